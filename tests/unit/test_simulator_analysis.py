"""Key classes, per-class statistics, confidence intervals, replicates, seeds, parallel runs."""

from __future__ import annotations

import functools
import math
import pickle
import random
from pathlib import Path
from typing import Any

import attrs
import pytest

from simulator import (
    CLASSES,
    HEAVY_ABOVE,
    LIGHT_BELOW,
    Row,
    RunResult,
    Trace,
    TraceError,
    by_class,
    confidence,
    flood,
    intervals,
    key_classes,
    poisson,
    replicate,
    run_many,
    seeded,
    seeds,
    simulate,
    t_quantile,
)
from simulator._analysis import _Blocks, _Resampled


def plain(value: Any) -> Any:
    """A result as nested builtins with NaN made comparable (NaN != NaN breaks `==`)."""
    if attrs.has(type(value)):
        return {f.name: plain(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def assert_same_runs(a: list[RunResult], b: list[RunResult]) -> None:
    assert [plain(r) for r in a] == [plain(r) for r in b]


def hand_trace() -> list[Row]:
    # Service: a 8 s, b 3 s, c 0.5 s of 11.5 s; an equal share is 1/3. Demand over
    # entitlement: a 2.09 (heavy), b 0.78 (medium), c 0.13 (light).
    return [
        ("a", 0.0, 4.0, None, None),
        ("b", 0.0, 1.0, None, None),
        ("c", 0.5, 0.5, None, None),
        ("a", 1.0, 4.0, None, None),
        ("b", 1.0, 2.0, None, None),
    ]


# ---- key classes -------------------------------------------------------------------------


def test_key_classes_compare_demand_share_with_an_equal_share() -> None:
    assert key_classes(hand_trace()) == {"a": "heavy", "b": "medium", "c": "light"}
    assert (LIGHT_BELOW, HEAVY_ABOVE) == (0.5, 2.0)


def test_key_classes_of_a_run_equal_those_of_its_trace() -> None:
    trace = Trace.from_rows(poisson(3000, rate=0.9, keys=12, zipf=1.3, seed=8))
    classes = key_classes(trace)
    assert set(classes.values()) == set(CLASSES)
    for policy in ("fifo", "lru", "drr"):
        assert key_classes(simulate(trace, policy, workers=2)) == classes


def test_key_classes_follow_weights() -> None:
    # Weight 4 of 6 entitles a to two thirds: its 70% demand is then medium, and b (one
    # sixth entitled, 26% demand) stays medium.
    classes = key_classes(hand_trace(), weights={"a": 4.0})
    assert classes == {"a": "medium", "b": "medium", "c": "light"}
    result = simulate(hand_trace(), {"policy": "drr", "weights": {"a": 4.0}}, workers=1)
    assert key_classes(result) == classes


def test_key_classes_boundaries_are_medium() -> None:
    # Demand exactly half (x, z) and exactly twice (y) an equal share: 1 s, 4 s, 1 s of 6 s.
    rows = [("x", 0.0, 1.0, None, None), ("y", 0.0, 4.0, None, None), ("z", 0.0, 1.0, None, None)]
    assert key_classes(rows) == {"x": "medium", "y": "medium", "z": "medium"}


def test_key_classes_reads_a_trace_file(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    lines = "".join(f"{k},{t},{s}\n" for k, t, s, _, _ in hand_trace())
    path.write_text("key,arrival,service\n" + lines)
    assert key_classes(path) == key_classes(hand_trace())


def test_key_classes_refuse_thresholds_out_of_order_and_bad_weights() -> None:
    with pytest.raises(ValueError, match="light_below <= heavy_above"):
        key_classes(hand_trace(), light_below=3.0, heavy_above=2.0)
    for weight in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="weight of 'a' must be a finite number > 0"):
            key_classes(hand_trace(), weights={"a": weight})


# ---- per-class statistics ----------------------------------------------------------------


def test_by_class_merges_the_keys_of_each_class() -> None:
    trace = Trace.from_rows(poisson(4000, rate=0.95, keys=10, zipf=1.2, seed=3))
    result = simulate(trace, "drr", workers=1)
    classes = key_classes(result)
    stats = by_class(result)
    assert list(stats) == list(CLASSES)
    assert sum(s.keys for s in stats.values()) == 10
    assert sum(s.tasks for s in stats.values()) == result.completed
    assert math.isclose(sum(s.share for s in stats.values()), 1.0)
    for name, cls in stats.items():
        members = [k for k in result.per_key if classes[k.key] == name]
        tasks = sum(k.count for k in members)
        mean = sum(k.wait_mean * k.count for k in members) / tasks
        assert math.isclose(cls.wait_mean, mean)
        assert cls.wait_max == max(k.wait_max for k in members)
        assert cls.wait_p50 <= cls.wait_p95 <= cls.wait_p99 <= cls.wait_max
        assert min(k.wait_p99 for k in members) <= cls.wait_p99 <= max(k.wait_p99 for k in members)
        firsts = [k.first_service for k in members]
        assert math.isclose(cls.first_service_mean, sum(firsts) / len(firsts))


def test_by_class_of_one_key_is_that_key() -> None:
    result = simulate(hand_trace(), None, workers=1)
    heavy = by_class(result)["heavy"]
    a = result.key("a")
    assert (heavy.keys, heavy.tasks) == (1, a.count)
    assert (heavy.wait_mean, heavy.wait_p50, heavy.wait_p95, heavy.wait_p99, heavy.wait_max) == (
        a.wait_mean,
        a.wait_p50,
        a.wait_p95,
        a.wait_p99,
        a.wait_max,
    )
    assert heavy.slowdown_mean == a.slowdown_mean
    assert math.isclose(heavy.share, 8.0 / 11.5)


def test_by_class_leaves_an_empty_class_nan_and_takes_a_mapping() -> None:
    result = simulate(hand_trace(), "drr", workers=1)
    stats = by_class(result, {"a": "light", "b": "light", "c": "light"})
    assert stats["light"].tasks == 5
    assert stats["heavy"].keys == stats["heavy"].tasks == 0
    assert math.isnan(stats["heavy"].wait_mean) and math.isnan(stats["heavy"].wait_p99)
    assert stats["heavy"].share == 0.0
    with pytest.raises(ValueError, match="unknown class 'huge'"):
        by_class(result, {"a": "huge"})


# ---- confidence intervals ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 1, 12.706),
        (0.975, 2, 4.303),
        (0.975, 5, 2.571),
        (0.975, 10, 2.228),
        (0.975, 30, 2.042),
        (0.975, 10**7, 1.960),
        (0.995, 3, 5.841),
        (0.95, 4, 2.132),
    ],
)
def test_t_quantile_matches_the_tables(p: float, df: int, expected: float) -> None:
    assert round(t_quantile(p, df), 3) == expected
    assert t_quantile(1 - p, df) == -t_quantile(p, df)


def test_t_interval_of_a_mean() -> None:
    mean, low, high = confidence([1.0, 2.0, 3.0, 4.0], method="t")
    half = 3.182446305284263 * 1.2909944487358056 / 2
    assert mean == 2.5
    assert math.isclose(low, 2.5 - half, rel_tol=1e-9)
    assert math.isclose(high, 2.5 + half, rel_tol=1e-9)


def test_percentile_interval_interpolates_order_statistics() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert confidence(values, 0.5) == (3.0, 2.0, 4.0)
    mean, low, high = confidence(range(1, 101))
    assert (mean, low, high) == pytest.approx((50.5, 3.475, 97.525))


def test_confidence_drops_nan_and_needs_two_values() -> None:
    assert confidence([2.0, math.nan, 4.0], method="t")[0] == 3.0
    mean, low, high = confidence([7.0])
    assert mean == 7.0 and math.isnan(low) and math.isnan(high)
    assert all(math.isnan(v) for v in confidence([]))
    with pytest.raises(ValueError, match="unknown method"):
        confidence([1.0, 2.0], method="bca")
    with pytest.raises(ValueError, match="level"):
        confidence([1.0, 2.0], level=95)


def test_intervals_cover_the_metrics_not_the_configuration() -> None:
    runs = seeds(seeded(poisson, n=300, rate=0.8, keys=3), "drr", 3, workers=1)
    spans = intervals(runs, method="t")
    assert {"wait_mean", "wait_p95", "completed", "jain_share"} <= set(spans)
    assert not {"workers", "window", "policy", "starvation_threshold"} & set(spans)
    assert spans["wait_mean"] == confidence([r.wait_mean for r in runs], method="t")


# ---- resampling --------------------------------------------------------------------------


def test_blocks_cut_the_trace_at_fixed_times_and_the_last_ends_at_the_last_arrival() -> None:
    trace = Trace.from_rows(poisson(500, rate=1.0, seed=2))
    blocks = _Blocks.cut(trace, 50.0)
    span = trace.arrivals[-1] - trace.arrivals[0]
    assert len(blocks.start) == math.ceil(span / 50.0)
    assert math.isclose(sum(blocks.length), span)
    for b, row in enumerate(blocks.first_row[1:], 1):
        assert trace.arrivals[row - 1] < blocks.start[b] <= trace.arrivals[row]


def test_resampling_every_block_in_order_gives_the_trace_back() -> None:
    trace = Trace.from_rows(poisson(500, rate=1.0, deadline_slack=30.0, seed=2))
    blocks = _Blocks.cut(trace, 50.0)
    same = _Resampled(blocks, tuple(range(len(blocks.start)))).build()
    assert same.keys == trace.keys
    assert list(same.services) == list(trace.services)
    assert max(abs(x - y) for x, y in zip(same.arrivals, trace.arrivals, strict=True)) < 1e-9
    assert same.deadlines is not None and trace.deadlines is not None
    assert max(abs(x - y) for x, y in zip(same.deadlines, trace.deadlines, strict=True)) < 1e-9  # type: ignore[operator]


def test_a_replicate_keeps_arrivals_sorted_and_deadlines_with_their_tasks() -> None:
    trace = Trace.from_rows(poisson(800, rate=1.0, deadline_slack=30.0, seed=5))
    blocks = _Blocks.cut(trace, 37.0)
    picks = blocks.draw(random.Random(1))
    resampled = _Resampled(blocks, picks).build()
    assert len(set(picks)) < len(picks)  # drawn with replacement
    arrivals = list(resampled.arrivals)
    assert arrivals == sorted(arrivals)
    assert resampled.deadlines is not None
    for at, due in zip(arrivals, resampled.deadlines, strict=True):
        assert math.isclose(due - at, 30.0)  # type: ignore[operator]
    assert len(resampled) == sum(
        (blocks.first_row[b + 1] if b + 1 < len(picks) else len(trace)) - blocks.first_row[b]
        for b in picks
    )


def test_replicates_are_deterministic_by_seed() -> None:
    trace = Trace.from_rows(poisson(600, rate=0.9, keys=4, seed=6))
    one = replicate(trace, "drr", replicates=4, block=60.0, seed=9)
    assert_same_runs(one, replicate(trace, "drr", replicates=4, block=60.0, seed=9))
    other = replicate(trace, "drr", replicates=4, block=60.0, seed=10)
    assert [r.wait_mean for r in one] != [r.wait_mean for r in other]
    assert len({r.wait_mean for r in one}) == 4


def test_bootstrap_interval_holds_the_full_trace_value_and_narrows_as_the_trace_grows() -> None:
    # A stationary M/M/1 at utilisation 0.5 over 4 keys; blocks of 40 s hold about 20 tasks,
    # well above the length of a busy period.
    widths = []
    for n in (500, 8_000):
        trace = Trace.from_rows(poisson(n, rate=0.5, keys=4, seed=12))
        full = simulate(trace, "drr", workers=1)
        runs = replicate(trace, "drr", replicates=25, block=40.0, workers=1, seed=1)
        for metric in ("wait_mean", "wait_p95"):
            _, low, high = confidence([getattr(r, metric) for r in runs])
            assert low <= getattr(full, metric) <= high, (n, metric, low, high)
        _, low, high = confidence([r.wait_mean for r in runs])
        widths.append(high - low)
    # Sixteen times the trace: about a quarter of the width (1 / sqrt(16)).
    assert widths[1] < 0.6 * widths[0], widths


# ---- seeds -------------------------------------------------------------------------------


def test_seeds_run_different_workloads_and_give_a_t_interval() -> None:
    workload = seeded(poisson, n=400, rate=0.85, keys=3)
    runs = seeds(workload, "drr", 6, seed=20, workers=1)
    assert len({r.wait_mean for r in runs}) == 6
    alone = simulate(Trace.from_rows(poisson(400, rate=0.85, keys=3, seed=20)), "drr")
    assert plain(runs[0]) == plain(alone)
    mean, low, high = confidence([r.wait_mean for r in runs], method="t")
    assert low < mean < high


def test_t_interval_narrows_as_seeds_are_added() -> None:
    workload = seeded(poisson, n=300, rate=0.8, keys=2)
    few = confidence([r.wait_mean for r in seeds(workload, "lru", 5)], method="t")
    many = confidence([r.wait_mean for r in seeds(workload, "lru", 40)], method="t")
    assert many[2] - many[1] < 0.7 * (few[2] - few[1])


def test_seeded_workloads_pickle() -> None:
    workload = seeded(flood, burst=30, light_keys=2)
    again = pickle.loads(pickle.dumps(workload))
    assert list(again(4)) == list(flood(30, light_keys=2, seed=4))


# ---- parallel runs -----------------------------------------------------------------------


def test_parallel_replicates_equal_serial_ones() -> None:
    trace = Trace.from_rows(poisson(1500, rate=0.9, keys=5, zipf=1.0, seed=12))
    options = {"replicates": 6, "block": 100.0, "seed": 3, "workers": 1}
    serial = replicate(trace, "drr", jobs=1, **options)
    assert_same_runs(serial, replicate(trace, "drr", jobs=2, **options))


def test_parallel_comparison_of_policies_and_seeds_equals_serial() -> None:
    workload = seeded(poisson, n=400, rate=1.6, keys=4, zipf=1.0)
    policies = {"fifo": None, "lru": "lru", "drr2": {"policy": "drr", "quantum": 2}}
    serial = run_many(workload, policies, seeds=3, workers=2)
    parallel = run_many(workload, policies, seeds=3, workers=2, jobs=2)
    assert list(parallel) == list(policies)
    for label in policies:
        assert_same_runs(serial[label], parallel[label])
        assert [r.policy for r in parallel[label]] == [label] * 3


def test_parallel_runs_of_a_trace_file_equal_serial(tmp_path: Path) -> None:
    from simulator import write_trace

    path = tmp_path / "t.csv"
    write_trace(path, poisson(500, rate=0.9, keys=3, seed=1))
    done: list[tuple[int, int]] = []
    parallel = run_many(path, ["lru", "drr"], jobs=2, done=lambda n, total: done.append((n, total)))
    serial = run_many(path, ["lru", "drr"])
    for label in ("lru", "drr"):
        assert_same_runs(serial[label], parallel[label])
    assert done[-1] == (2, 2)


def test_a_bad_trace_fails_the_same_way_in_a_worker_process(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("key,arrival,service\na,0,1\nb,zero,1\n", encoding="utf-8")
    errors = []
    for jobs in (1, 2):
        with pytest.raises(TraceError) as caught:
            run_many(path, ["lru", "drr"], jobs=jobs)
        errors.append(caught.value)
    serial, parallel = errors
    assert str(parallel) == str(serial)
    assert str(parallel).startswith(f"{path}, line 3, field 'arrival': ")
    assert (parallel.path, parallel.line, parallel.column) == (str(path), 3, "arrival")


def _local_workload(seed: int) -> list[Row]:
    return list(poisson(50, rate=1.0, seed=seed))


def test_what_cannot_reach_a_worker_process_is_refused_clearly() -> None:
    from simulator import as_policy

    with pytest.raises(TypeError, match="a workload cannot be pickled"):
        run_many(lambda seed: poisson(50, rate=1.0, seed=seed), ["lru", "drr"], seeds=2, jobs=2)
    with pytest.raises(TypeError, match="a policy cannot be pickled"):
        run_many(hand_trace(), {"drr": as_policy("drr"), "lru": "lru"}, jobs=2)
    # In this process anything callable does.
    runs = run_many(lambda seed: poisson(50, rate=1.0, seed=seed), ["lru"], seeds=2)
    assert len(runs["lru"]) == 2
    # A module-level function or a partial of one pickles.
    runs = run_many(functools.partial(_local_workload), ["lru", "drr"], seeds=2, jobs=2)
    assert len(runs["drr"]) == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"replicates": 3, "block": 0.0}, ValueError, "block must be a finite number"),
        ({"replicates": 3, "block": math.nan}, ValueError, "block must be a finite number"),
        ({"replicates": 3, "block": math.inf}, ValueError, "block must be a finite number"),
        ({"replicates": 3, "block": 1e6}, ValueError, "leaves the whole trace"),
        ({"replicates": 0, "block": 10.0}, ValueError, "replicates must be an int >= 1"),
        ({"replicates": 2.5, "block": 10.0}, ValueError, "replicates must be an int >= 1"),
        ({"replicates": 3}, ValueError, "replicates and block go together"),
        ({"block": 10.0}, ValueError, "replicates and block go together"),
        ({"seeds": 3}, TypeError, "trace must be a workload function"),
        ({"seeds": 3, "replicates": 3, "block": 10.0}, ValueError, "not both"),
        ({"jobs": 0}, ValueError, "jobs must be an int >= 1"),
        ({"seed": 1.5}, ValueError, "seed must be an int"),
        ({"name": "x"}, TypeError, "pass no name="),
    ],
)
def test_bad_arguments_are_refused_before_any_run(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    trace = Trace.from_rows(poisson(200, rate=1.0, seed=1))
    with pytest.raises(error, match=words):
        run_many(trace, ["lru"], **kwargs)


def test_a_workload_function_needs_seeds_and_an_unknown_policy_fails_first() -> None:
    from policies import UnknownPolicy

    with pytest.raises(TypeError, match="needs seeds"):
        run_many(seeded(poisson, n=10, rate=1.0), ["lru"])
    with pytest.raises(UnknownPolicy):
        run_many(hand_trace(), ["lru", "fastest"], jobs=2)


def test_intervals_frame_has_a_row_per_label_and_mean_low_high_columns() -> None:
    from simulator import intervals_frame

    trace = Trace.from_rows(poisson(800, rate=1.7, keys=4, seed=2))
    runs = run_many(trace, {"fifo": None, "drr": "drr"}, replicates=5, block=60.0, workers=2)
    frame = intervals_frame(runs)
    assert list(frame.index) == ["fifo", "drr"]
    assert (frame["runs"] == 5).all()
    for label, results in runs.items():
        expected = confidence([r.wait_p95 for r in results])
        columns = ["wait_p95", "wait_p95_low", "wait_p95_high"]
        assert tuple(frame.loc[label, columns]) == expected
    assert frame.attrs["runs"]["drr"] == runs["drr"]
    assert frame.attrs["method"] == "percentile"
