"""Masker registry and config validation: clear errors naming what is wrong."""

import pickle

import pytest

from sparse_attention_hub.sparse_attention import ResearchAttention, ResearchAttentionConfig
from sparse_attention_hub.sparse_attention.maskers import (
    LocalMaskerConfig,
    MaskerConfig,
    OracleTopKConfig,
    OracleTopPMaskerConfig,
    QuestConfig,
    RandomSamplingMaskerConfig,
    SinkMaskerConfig,
    create_masker,
    describe_maskers,
    masker_config_from_dict,
    resolve_size,
)
from sparse_attention_hub.sparse_attention.maskers.examples import example_masker_configs

KNOWN = [
    "sink",
    "local",
    "oracle_top_k",
    "oracle_top_p",
    "random_sampling",
    "quest",
    "pq_cache",
    "double_sparsity",
    "hashattention",
    "magicpig",
    "vattention",
    "socket",
    "snapkv",
    "knorm",
    "tova",
    "h2o",
    "pyramidkv",
    "streaming_eviction",
]


@pytest.mark.parametrize(
    "factory, field",
    [
        (lambda: SinkMaskerConfig(-1), "sink_size"),
        (lambda: SinkMaskerConfig(1.5), "sink_size"),
        (lambda: SinkMaskerConfig(0.0), "sink_size"),
        (lambda: LocalMaskerConfig(-3), "window_size"),
        (lambda: OracleTopKConfig(-0.5), "heavy_size"),
        (lambda: OracleTopPMaskerConfig(1.1), "top_p"),
        (lambda: OracleTopPMaskerConfig(-0.1), "top_p"),
        (lambda: RandomSamplingMaskerConfig(0.0), "sampling_rate"),
        (lambda: RandomSamplingMaskerConfig(1.5), "sampling_rate"),
        (lambda: QuestConfig(token_budget=-1), "token_budget"),
        (lambda: QuestConfig(page_size=0), "page_size"),
        (lambda: QuestConfig(label_bits=17), "label_bits"),
        (lambda: QuestConfig(label_bits=0), "label_bits"),
        (lambda: ResearchAttentionConfig([], dense_layers=[-1]), "dense_layers"),
        (lambda: ResearchAttentionConfig([], dense_layers=[0, 0]), "dense_layers"),
        (lambda: ResearchAttentionConfig([], dense_layers=["0"]), "dense_layers"),
        (lambda: ResearchAttentionConfig([], dense_layers=3), "dense_layers"),
        (lambda: ResearchAttentionConfig([], dense_layers=[True]), "dense_layers"),
    ],
)
def test_bad_values_raise_value_error_naming_the_field(factory, field):
    with pytest.raises(ValueError, match=field):
        factory()


@pytest.mark.parametrize("value", ["128", None, True, [1]])
def test_bad_size_types_raise_type_error_naming_the_field(value):
    with pytest.raises(TypeError, match="heavy_size"):
        OracleTopKConfig(value)


@pytest.mark.parametrize(
    ("masker", "params", "field"),
    [
        ("oracle_top_k", {"heavy_size": 0}, "heavy_size"),
        ("quest", {"token_budget": 0}, "token_budget"),
        ("pq_cache", {"heavy_size": 0}, "heavy_size"),
        ("double_sparsity", {"heavy_size": 0, "channel_file": "c.json"}, "heavy_size"),
        ("hashattention", {"heavy_size": 0, "weights_file": "w.safetensors"}, "heavy_size"),
    ],
)
def test_a_top_k_size_of_zero_is_refused(masker, params, field):
    """A top-k that keeps no key is a config that only names a method: refused, with the range."""
    with pytest.raises(ValueError, match=rf"{field} must be an int in \[1, 2\*\*31") as info:
        masker_config_from_dict(masker, params)
    assert "0 selects no key" in str(info.value)


def test_sink_and_window_may_be_zero_but_no_size_exceeds_2_to_the_31():
    assert SinkMaskerConfig(0).sink_size == 0 and LocalMaskerConfig(0).window_size == 0
    assert SinkMaskerConfig(2**31).sink_size == 2**31
    for factory in (lambda: SinkMaskerConfig(10**30), lambda: OracleTopKConfig(2**31 + 1)):
        with pytest.raises(ValueError, match=r"\[0|\[1") as info:
            factory()
        assert "larger than any model's context" in str(info.value)


def test_two_sampling_maskers_are_rejected():
    two = [RandomSamplingMaskerConfig(0.1), SinkMaskerConfig(1), RandomSamplingMaskerConfig(0.2)]
    with pytest.raises(ValueError, match="at most one sampling masker"):
        ResearchAttentionConfig(two)
    maskers = [create_masker(c) for c in two]
    with pytest.raises(ValueError, match="at most one sampling masker"):
        ResearchAttention(maskers)


def test_a_sampling_masker_must_come_last():
    order = [RandomSamplingMaskerConfig(0.1), SinkMaskerConfig(1)]
    with pytest.raises(ValueError, match="'random_sampling' must be the last"):
        ResearchAttentionConfig(order)
    with pytest.raises(ValueError, match="must be the last"):
        ResearchAttention([create_masker(c) for c in order])
    ResearchAttentionConfig(order[::-1])  # last: fine


def test_unknown_config_type_raises_type_error():
    class Foreign(MaskerConfig):
        pass

    with pytest.raises(TypeError, match="unknown masker config type Foreign"):
        ResearchAttentionConfig([Foreign()])
    with pytest.raises(TypeError, match="unknown masker config type"):
        create_masker(Foreign())
    with pytest.raises(TypeError, match="ResearchAttentionConfig"):
        ResearchAttention.create_from_config([SinkMaskerConfig(1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="list of masker configs"):
        ResearchAttentionConfig(SinkMaskerConfig(1))  # type: ignore[arg-type]


def test_config_dict_round_trip_and_pickle():
    cfg = ResearchAttentionConfig([*example_masker_configs()[:3], OracleTopKConfig(0.1)])
    data = cfg.to_dict()
    assert data["maskers"][1] == {"sink": {"sink_size": 3}}
    assert ResearchAttentionConfig.from_dict(data) == cfg
    assert pickle.loads(pickle.dumps(cfg)) == cfg
    assert ResearchAttentionConfig.from_dict({"maskers": []}).masker_configs == []
    assert ResearchAttentionConfig().to_dict() == {"maskers": []}
    layered = ResearchAttentionConfig([QuestConfig(0.05)], dense_layers=[1, 0])
    assert layered.dense_layers == [0, 1]
    assert layered.to_dict() == {
        "maskers": [
            {
                "quest": {
                    "token_budget": 0.05,
                    "page_size": 16,
                    "label_bits": 16,
                    "keep_last_page": False,
                }
            }
        ],
        "dense_layers": [0, 1],
    }
    assert ResearchAttentionConfig.from_dict(layered.to_dict()) == layered
    assert pickle.loads(pickle.dumps(layered)) == layered


def test_from_dict_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"unknown masker 'hash'.*sink, local, oracle_top_k"):
        ResearchAttentionConfig.from_dict({"maskers": [{"hash": {}}]})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['size'\].*sink_size"):
        masker_config_from_dict("sink", {"size": 3})
    with pytest.raises(ValueError, match=r"needs parameter.*window_size"):
        masker_config_from_dict("local", {})
    with pytest.raises(ValueError, match="top_p"):
        ResearchAttentionConfig.from_dict({"maskers": [{"oracle_top_p": {"top_p": 2}}]})
    with pytest.raises(ValueError, match="one-key mapping"):
        ResearchAttentionConfig.from_dict({"maskers": [{"sink": {"sink_size": 1}, "local": {}}]})
    with pytest.raises(ValueError, match="maskers"):
        ResearchAttentionConfig.from_dict({"masker": []})


def test_describe_maskers_lists_every_masker_with_params():
    rows = describe_maskers()
    assert [name for name, _, _ in rows] == KNOWN
    params = dict((name, p) for name, p, _ in rows)
    assert "sink_size" in params["sink"] and "fraction of K" in params["sink"]
    assert all(description for _, _, description in rows)
    assert "token_budget: int tokens | float fraction of K = 1024" in params["quest"]
    assert "page_size: int = 16" in params["quest"] and "label_bits: int = 16" in params["quest"]
    assert "Tang et al., 2024" in dict((n, d) for n, _, d in rows)["quest"]
    assert "heavy_size: int tokens | float fraction of K (required)" in params["pq_cache"]
    assert (
        "pq_bits: int = 6" in params["pq_cache"] and "init_offset: int = 32" in params["pq_cache"]
    )
    assert "Zhang et al., 2024" in dict((n, d) for n, _, d in rows)["pq_cache"]
    ds = params["double_sparsity"]
    assert "channel_file: str (required)" in ds and "group_factor: int = 8" in ds
    assert "label_bits: int = 4" in ds and "channel_selection: str = 'q'" in ds
    assert "Yang et al., 2024" in dict((n, d) for n, _, d in rows)["double_sparsity"]
    assert "weights_file: str (required)" in params["hashattention"]
    assert "Desai et al., 2025" in dict((n, d) for n, _, d in rows)["hashattention"]


@pytest.mark.parametrize(
    "size, k, tokens",
    [(5, 10, 5), (50, 10, 10), (0, 10, 0), (0.5, 10, 5), (0.01, 10, 1), (1.0, 7, 7), (0.3, 0, 0)],
)
def test_sizes_are_tokens_or_fractions_of_k(size, k, tokens):
    assert resolve_size(size, k) == tokens


def test_score_budget_is_a_config_field_left_out_of_the_dict_at_its_default():
    from sparse_attention_hub.sparse_attention.research_config import DEFAULT_SCORE_BUDGET_BYTES

    default = ResearchAttentionConfig([OracleTopKConfig(0.1)])
    assert default.score_budget_bytes == DEFAULT_SCORE_BUDGET_BYTES
    assert "score_budget_bytes" not in default.to_dict()  # fingerprints stay as they were
    small = ResearchAttentionConfig([OracleTopKConfig(0.1)], score_budget_bytes=2**20)
    assert small.to_dict()["score_budget_bytes"] == 2**20
    assert ResearchAttentionConfig.from_dict(small.to_dict()) == small
    assert pickle.loads(pickle.dumps(small)) == small
    assert small != default
    assert ResearchAttention.create_from_config(small).score_budget_bytes == 2**20
    for bad in (0, -1, 1.5, True, "128MiB"):
        with pytest.raises(ValueError, match=r"ResearchAttentionConfig\.score_budget_bytes"):
            ResearchAttentionConfig([], score_budget_bytes=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="score_budget_bytes"):
        ResearchAttentionConfig.from_dict({"maskers": [], "score_budget_bytes": 0})
