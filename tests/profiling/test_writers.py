"""The writers: speedscope JSON by its schema, the SVG as XML, folded stacks; and the summary."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarmperf.core.errors import ConfigError
from swarmperf.profiling import Profile, check_components, render
from swarmperf.profiling.stacks import AGENT, COORDINATOR, Frame

# The required parts of https://www.speedscope.app/file-format-schema.json for a file of
# sampled profiles (the file, its shared frames, each sampled profile).
SPEEDSCOPE_SAMPLED = {
    "type": "object",
    "required": ["$schema", "shared", "profiles"],
    "properties": {
        "$schema": {"const": "https://www.speedscope.app/file-format-schema.json"},
        "shared": {
            "type": "object",
            "required": ["frames"],
            "properties": {
                "frames": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "file": {"type": "string"},
                            "line": {"type": "number"},
                        },
                    },
                }
            },
        },
        "profiles": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    "type", "name", "unit", "startValue", "endValue", "samples", "weights"
                ],
                "properties": {
                    "type": {"const": "sampled"},
                    "name": {"type": "string"},
                    "unit": {
                        "enum": [
                            "none", "nanoseconds", "microseconds", "milliseconds", "seconds",
                            "bytes",
                        ]
                    },
                    "startValue": {"type": "number"},
                    "endValue": {"type": "number"},
                    "samples": {
                        "type": "array",
                        "items": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    },
                    "weights": {"type": "array", "items": {"type": "number"}},
                },
            },
        },
        "name": {"type": "string"},
        "activeProfileIndex": {"type": "integer"},
        "exporter": {"type": "string"},
    },
}  # fmt: skip

HOT: Frame = ("planted_hot_spin_loop", "profiling/hot_handlers.py", 9)
LOOP: Frame = ("Runner.run", "asyncio/runners.py", 86)
WORK: Frame = ("LocalBackend._work", "swarmperf/runtime/local.py", 125)
HANDLER: Frame = ("hot", "profiling/hot_handlers.py", 18)
JOURNAL: Frame = ("Journal._write", "swarmperf/service/journal.py", 168)


def planted() -> Profile:
    profile = Profile(100.0, 2.0)
    thread: Frame = ("thread MainThread", "", 0)
    profile.add([thread, LOOP, WORK, HANDLER, HOT], AGENT, "a1", "hot", 80)
    profile.add([thread, LOOP, WORK, HANDLER, HOT], AGENT, "a2", "hot", 20)
    profile.add([thread, LOOP, WORK], AGENT, "a2", "(worker)", 5)
    profile.add([("thread journal", "", 0), JOURNAL], COORDINATOR, None, None, 15)
    profile.idle = 30
    return profile


def test_speedscope_validates_and_has_a_profile_per_agent() -> None:
    data = json.loads(render(planted(), "speedscope"))
    jsonschema.validate(data, SPEEDSCOPE_SAMPLED)
    frames = data["shared"]["frames"]
    names = [p["name"] for p in data["profiles"]]
    assert names == ["all samples", "agent a1", "agent a2"]
    everything = data["profiles"][0]
    assert len(everything["samples"]) == len(everything["weights"])
    assert everything["endValue"] == pytest.approx(120 / 100.0)
    assert all(i < len(frames) for sample in everything["samples"] for i in sample)


def test_the_svg_is_xml_and_the_hot_function_is_its_widest_top_box() -> None:
    svg = render(planted(), "svg")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    boxes = {}
    for group in root.iter(f"{ns}g"):
        title = group.find(f"{ns}title")
        rect = group.find(f"{ns}rect")
        assert title is not None
        assert rect is not None
        boxes[title.text or ""] = float(rect.get("width", "0"))
    hot = next(width for tip, width in boxes.items() if tip.startswith("planted_hot_spin_loop"))
    everything = next(width for tip, width in boxes.items() if tip.startswith("all "))
    assert hot == pytest.approx(everything * 100 / 120, rel=1e-3)
    journal = next(width for tip, width in boxes.items() if tip.startswith("Journal._write"))
    assert hot > journal


def test_collapsed_is_folded_stacks_that_add_up() -> None:
    text = render(planted(), "collapsed")
    lines = text.strip().splitlines()
    assert all(re.fullmatch(r"[^ ].* \d+", line) for line in lines)
    assert sum(int(line.rsplit(" ", 1)[1]) for line in lines) == 120
    hot = [line for line in lines if line.split(" ")[-2].startswith("(profiling/hot")]
    assert sum(int(line.rsplit(" ", 1)[1]) for line in hot) == 100


def test_the_summary_splits_by_agent_and_handler_and_selects_components() -> None:
    profile = planted()
    summary = profile.summary()
    assert summary["top_self"][0]["function"] == "planted_hot_spin_loop"
    assert summary["attributed_share"] == pytest.approx(105 / 120)
    assert summary["agents"][0] == {"agent": "a1", "samples": 80, "share": pytest.approx(80 / 120)}
    assert summary["handlers"][0]["handler"] == "hot"
    assert profile.select("coordinator").samples == 15
    assert profile.select("agents").samples == 105
    assert profile.select("a2").samples == 25
    html = render(profile, "html")
    assert "<svg" in html
    assert "planted_hot_spin_loop" in html


def test_unknown_components_are_config_errors() -> None:
    assert check_components("a1", ["a1", "a2"]) == "a1"
    with pytest.raises(ConfigError) as caught:
        check_components("ghost", ["a1", "a2"])
    assert caught.value.field == "--components"
    assert "a1, a2" in caught.value.fix


names = st.sampled_from(["f", "g", "h;x", "<k&>", "m n"])
stacks = st.lists(
    st.tuples(
        st.lists(st.tuples(names, st.sampled_from(["a.py", ""]), st.integers(0, 5)), max_size=6),
        st.sampled_from([None, "a1", "a2"]),
        st.integers(1, 50),
    ),
    max_size=12,
)


@given(stacks)
def test_any_profile_round_trips_and_writes_well_formed_files(
    rows: list[tuple[list[Frame], str | None, int]],
) -> None:
    profile = Profile(97.0, 1.5)
    for frames, agent, count in rows:
        profile.add(frames, AGENT if agent else COORDINATOR, agent, None, count)
    again = Profile.from_data(json.loads(json.dumps(profile.to_data())))
    assert again.folded() == profile.folded()
    assert again.samples == profile.samples == sum(count for _, _, count in rows)
    ET.fromstring(render(profile, "svg"))
    jsonschema.validate(json.loads(render(profile, "speedscope")), SPEEDSCOPE_SAMPLED)
    folded = render(profile, "collapsed")
    assert sum(int(line.rsplit(" ", 1)[1]) for line in folded.splitlines()) == profile.samples
