"""ZeroSCROLLS's tasks, their metrics and generation budgets (tau-nlp/zero_scrolls)."""

from __future__ import annotations

TASKS: tuple[str, ...] = (
    "gov_report",
    "summ_screen_fd",
    "qmsum",
    "squality",
    "qasper",
    "narrative_qa",
    "quality",
    "musique",
    "space_digest",
    "book_sum_sort",
)
# experiments/api/api.py: dataset_to_leave_tokens_for_generations
MAX_NEW_TOKENS: dict[str, int] = {
    "gov_report": 1024,
    "summ_screen_fd": 512,
    "qmsum": 512,
    "qasper": 128,
    "narrative_qa": 64,
    "quality": 10,
    "musique": 32,
    "squality": 512,
    "space_digest": 36,
    "book_sum_sort": 256,
}
# the task's leaderboard metric
TASK_METRIC: dict[str, str] = {
    "gov_report": "rouge/geometric_mean",
    "summ_screen_fd": "rouge/geometric_mean",
    "qmsum": "rouge/geometric_mean",
    "squality": "rouge/geometric_mean",
    "qasper": "f1",
    "narrative_qa": "f1",
    "musique": "f1",
    "quality": "accuracy",
    "space_digest": "exp_similarity",
    "book_sum_sort": "concordance_index",
}
SPLITS: tuple[str, ...] = ("validation", "test")
SUBMISSION_FILE = "zero_scrolls_predictions.csv"
SUBMISSION_LINK = "https://zero.scrolls-benchmark.com/submission"
