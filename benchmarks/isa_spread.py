"""How far each zoo card's metrics move with the CPU's code generation.

An adaptive solver's step count, and so every metric evaluated through it, moves with the
last bits of the arithmetic: FMA contraction, vector width, reduction order. XLA picks
those from the CPU it runs on; `XLA_FLAGS=--xla_cpu_max_isa=...` limits it to an older
vector unit. This script recomputes every entry's card metrics from the shipped weights
(what `odezoo zoo check` does) under each setting, each in a fresh process, and, with
`--reproduce`, retrains the CI entries (`odezoo zoo reproduce --fast`) under each.

    python benchmarks/isa_spread.py measure [--reproduce] [--settings default,SSE4_2,AVX,AVX2]
    python benchmarks/isa_spread.py table            # the markdown table from the JSON
    python benchmarks/isa_spread.py tolerances       # write each card's tolerances from it

`measure` writes `benchmarks/results/isa_spread.json`; `table` writes
`benchmarks/results/isa_spread.md` (shown on the docs' zoo page); `tolerances` sets each
card's `metrics.json` `tolerances` by `odezoo.internal.tolerance_from_spread` and re-renders
the cards' metrics tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
JSON = RESULTS / "isa_spread.json"
TABLE = RESULTS / "isa_spread.md"
SETTINGS = ("default", "SSE4_2", "AVX", "AVX2")

# Values measured on other machines, reported with the machine they ran on: a setting
# of another CPU is not this CPU's (XLA tunes the code for the host, so the same
# `max_isa` can round differently there). Each: entry -> metric -> {setting: value}.
REPORTED = {
    "AMD EPYC, 2 cores": {
        "seed-cubic-anode": {"nfe_forward": {"default": 63, "AVX2": 63, "SSE4_2": 69}},
        "ncde-spirals-drop30": {"nfe_forward": {"default": 411, "SSE4_2": 429, "AVX": 429}},
    }
}


def _env(setting: str) -> dict:
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_cpu_max_isa" not in f]
    if setting != "default":
        flags.append(f"--xla_cpu_max_isa={setting}")
    env["XLA_FLAGS"] = " ".join(flags)
    return env


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _run(cmd: list[str], setting: str) -> tuple[dict, float]:
    """Run an `odezoo zoo` command that writes `--json FILE` under `setting`."""
    out = RESULTS / f".isa_spread_{setting}.json"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "odezoo.zoo", *cmd, "--json", str(out)],
        env=_env(setting),
        text=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - start
    sys.stderr.write(done.stdout + done.stderr)
    result = json.loads(out.read_text())
    out.unlink()
    return result, seconds


def measure(settings: list[str], reproduce: bool) -> None:
    data: dict = {
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "settings": settings,
        "check": {},
        "reproduce": {},
        "seconds": {},
        "reported": REPORTED,
    }
    for setting in settings:
        print(f"zoo check under {setting} ...", file=sys.stderr, flush=True)
        data["check"][setting], data["seconds"][f"check {setting}"] = _run(["check"], setting)
        if reproduce:
            print(f"zoo reproduce --fast under {setting} ...", file=sys.stderr, flush=True)
            data["reproduce"][setting], data["seconds"][f"reproduce {setting}"] = _run(
                ["reproduce", "--fast"], setting
            )
        JSON.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {JSON}", file=sys.stderr)


def _values(data: dict, kind: str, name: str, key: str) -> dict:
    """Every recorded value of one metric of one entry: {column: value}."""
    values = {}
    for setting, result in data[kind].items():
        got = (result.get(name) or {}).get("measured", {}).get(key)
        if got is not None:
            values[setting] = got
    if kind == "check":
        for machine, entries in data.get("reported", {}).items():
            for setting, got in entries.get(name, {}).get(key, {}).items():
                values[f"{setting} ({machine})"] = got
    return values


def spreads(data: dict, kind: str = "check") -> dict:
    """{entry: {metric: (card value, {column: value}, spread)}}, the spread being the
    largest |value - card| over the columns."""
    out: dict = {}
    first = next(iter(data[kind].values()))
    for name, result in first.items():
        for key, want in result["stated"].items():
            values = _values(data, kind, name, key)
            spread = max((abs(v - want) for v in values.values()), default=0.0)
            out.setdefault(name, {})[key] = (want, values, spread)
    return out


def _fmt(v: float) -> str:
    from odezoo._format import format_number

    return format_number(v)


def table(data: dict) -> str:
    from odezoo.internal import tolerance_bound

    settings = data["settings"]
    machines = list(data.get("reported", {}))
    lines = [
        f"Measured on {data['cpu']} ({data['cores']} cores), each setting "
        "`XLA_FLAGS=--xla_cpu_max_isa=SETTING` in a fresh process "
        "(`python benchmarks/isa_spread.py measure --reproduce`). "
        + (
            "Values in italics were reported from another machine: " + ", ".join(machines) + ". "
            if machines
            else ""
        )
        + "*spread* is the largest distance from the card's value; *tolerance* is what "
        "`odezoo zoo check` accepts (the card's `tolerances`).",
        "",
        "### Recomputed from the shipped weights (`odezoo zoo check`)",
        "",
        "| entry | metric | card | " + " | ".join(settings) + " | other machines | spread | "
        "tolerance |",
        "|---|---|---|" + "---|" * (len(settings) + 3),
    ]
    from odezoo.internal import read_tolerances

    for name, metrics in spreads(data, "check").items():
        tolerances = read_tolerances(name)
        for key, (want, values, spread) in metrics.items():
            cells = [_fmt(values[s]) if s in values else "–" for s in settings]
            other = [f"*{_fmt(v)}* ({c.split(' (')[0]})" for c, v in values.items() if "(" in c]
            bound = tolerance_bound(want, tolerances.get(key))
            flag = "" if spread <= bound else " **exceeded**"
            lines.append(
                f"| {name} | {key} | {_fmt(want)} | " + " | ".join(cells)
                + f" | {', '.join(other) or '–'} | {_fmt(spread)} | ±{_fmt(bound)}{flag} |"
            )  # fmt: skip
    if data.get("reproduce"):
        lines += [
            "",
            "### Retrained from the config (`odezoo zoo reproduce --fast`)",
            "",
            "| entry | metric | card | " + " | ".join(settings) + " | spread | bound |",
            "|---|---|---|" + "---|" * (len(settings) + 2),
        ]
        first = next(iter(data["reproduce"].values()))
        for name, metrics in spreads(data, "reproduce").items():
            for key, (want, values, spread) in metrics.items():
                cells = [_fmt(values[s]) if s in values else "–" for s in settings]
                bound = first[name]["bounds"][key]
                flag = "" if spread <= bound else " **exceeded**"
                lines.append(
                    f"| {name} | {key} | {_fmt(want)} | " + " | ".join(cells)
                    + f" | {_fmt(spread)} | ±{_fmt(bound)}{flag} |"
                )  # fmt: skip
    lines.append("")
    return "\n".join(lines)


def write_tolerances(data: dict) -> None:
    from odezoo.internal import tolerance_from_spread, write_card_tolerances

    for name, metrics in spreads(data, "check").items():
        tolerances = {
            key: tolerance_from_spread(key, want, spread)
            for key, (want, _, spread) in metrics.items()
        }
        write_card_tolerances(name, tolerances)
        print(f"{name}: {tolerances}", file=sys.stderr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["measure", "table", "tolerances"])
    p.add_argument("--settings", default=",".join(SETTINGS))
    p.add_argument("--reproduce", action="store_true", help="also zoo reproduce --fast")
    args = p.parse_args()
    if args.what == "measure":
        measure(args.settings.split(","), args.reproduce)
        return
    data = json.loads(JSON.read_text())
    if args.what == "tolerances":
        write_tolerances(data)
    TABLE.write_text(table(data))
    print(f"wrote {TABLE}", file=sys.stderr)


if __name__ == "__main__":
    main()
