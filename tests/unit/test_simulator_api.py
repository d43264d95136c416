"""`compare`, the plotting helpers and the workload generators."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from simulator import (
    Trace,
    compare,
    diurnal,
    flood,
    plot_fairness,
    plot_wait_cdfs,
    poisson,
    save_comparison_plot,
    simulate,
    sybil,
    write_trace,
)
from tests.servers import real_trace


def test_compare_returns_one_row_per_policy_with_the_results_attached() -> None:
    trace = Trace.from_rows(sybil(2000, 1.7, seed=1))
    frame = compare(trace, {"fifo": None, "drr": "drr", "w": {"policy": "weighted_lru"}}, workers=2)
    assert list(frame.index) == ["fifo", "drr", "w"]
    assert frame.loc["drr", "completed"] == 2000
    assert frame.attrs["results"]["drr"] == simulate(trace, "drr", workers=2, name="drr")
    assert {"wait_p99", "jain_share", "starvation_episodes"} <= set(frame.columns)


def test_compare_accepts_a_list_of_names_and_a_one_shot_iterator() -> None:
    frame = compare(poisson(300, rate=0.8, keys=3, seed=2), ["lru", "drr"])
    assert list(frame.index) == ["lru", "drr"]
    assert (frame["completed"] == 300).all()


def test_compare_on_the_real_llm_trace_shows_drr_protecting_the_light_service() -> None:
    path = real_trace("azure_llm_inference_2023/llm2023_merged.fairsched.csv")
    # Offered load is about 39 busy servers (README); 40 workers keeps it just below 1.
    frame = compare(path, {"fifo": None, "drr": "drr"}, workers=40)
    fifo, drr = frame.attrs["results"]["fifo"], frame.attrs["results"]["drr"]
    assert fifo.tasks == drr.tasks == 28_185
    assert drr.key("code").wait_mean <= fifo.key("code").wait_mean


def test_plots_draw_and_save(tmp_path: Path) -> None:
    trace = Trace.from_rows(flood(100, light_keys=3, seed=3))
    results = {p: simulate(trace, p, workers=2) for p in ("lru", "drr")}
    ax = plot_wait_cdfs(results["drr"], top=2)
    assert len(ax.get_lines()) == 2
    ax = plot_fairness(results)
    assert len(ax.get_lines()) == 2
    path = save_comparison_plot(results, tmp_path / "x.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("kind", ["exp", "det", "lognormal", "pareto"])
def test_service_kinds_have_the_requested_mean(kind: str) -> None:
    services = [r[2] for r in poisson(40_000, rate=1.0, service=kind, mean_service=2.0, seed=4)]
    assert statistics.fmean(services) == pytest.approx(2.0, rel=0.05 if kind != "pareto" else 0.1)
    assert min(services) > 0


def test_poisson_rate_and_zipf_popularity() -> None:
    rows = list(poisson(50_000, rate=4.0, keys=10, zipf=1.0, seed=5))
    assert rows[-1][1] == pytest.approx(50_000 / 4.0, rel=0.02)
    counts = [sum(1 for r in rows if r[0] == f"k{i}") for i in (0, 1, 3)]
    # Zipf(1): key i has weight 1/(i+1), so k0 : k1 : k3 is about 4 : 2 : 1.
    assert counts[0] / counts[1] == pytest.approx(2.0, rel=0.1)
    assert counts[0] / counts[2] == pytest.approx(4.0, rel=0.1)


def test_flood_dumps_the_burst_at_one_instant_in_arrival_order() -> None:
    rows = list(flood(500, light_keys=4, light_rate=2.0, duration=50, burst_at=20, seed=6))
    burst = [r for r in rows if r[0] == "flood"]
    assert len(burst) == 500
    assert {r[1] for r in burst} == {20.0}
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)


def test_sybil_share_and_diurnal_swing() -> None:
    rows = list(sybil(20_000, 1.0, sybil_keys=40, sybil_share=0.6, seed=7))
    share = sum(r[0].startswith("sybil") for r in rows) / len(rows)
    assert share == pytest.approx(0.6, abs=0.02)
    assert len({r[0] for r in rows if r[0].startswith("sybil")}) == 40
    day = list(diurnal(86_400, base_rate=0.05, peak_rate=0.5, seed=8))
    night = sum(1 for r in day if r[1] < 3_600 or r[1] > 82_800)
    noon = sum(1 for r in day if 39_600 < r[1] < 46_800)
    assert noon > 5 * night


@pytest.mark.parametrize(
    "make",
    [
        lambda s: poisson(500, rate=1.0, keys=5, zipf=1.2, service="pareto", seed=s),
        lambda s: flood(50, seed=s),
        lambda s: sybil(500, 1.0, seed=s),
        lambda s: diurnal(5_000, base_rate=0.1, peak_rate=1.0, period=2_000, seed=s),
    ],
)
def test_generators_are_deterministic_by_seed_and_write_the_trace_format(
    make: object, tmp_path: Path
) -> None:
    first = list(make(1))  # type: ignore[operator]
    assert first == list(make(1))  # type: ignore[operator]
    assert first != list(make(2))  # type: ignore[operator]
    write_trace(tmp_path / "g.csv", iter(first))
    assert len(Trace.load(tmp_path / "g.csv")) == len(first)


def test_generators_reject_bad_parameters() -> None:
    with pytest.raises(ValueError, match="unknown service kind"):
        next(poisson(1, rate=1.0, service="gamma"))
    with pytest.raises(ValueError, match="alpha"):
        next(poisson(1, rate=1.0, service="pareto", alpha=1.0))
    with pytest.raises(ValueError, match="rate"):
        next(poisson(1, rate=0.0))
    assert math.isfinite(next(poisson(1, rate=1.0))[1])
