"""The panel, its sub-panels and the preferences as an animator meets them, in bpy 5.0.1: the model dropdown keeps
its choice by directory, buttons without an armature or during a generation are greyed out with the reason,
each timeline button's options are drawn beside it, and the words are an animator's."""
import types

import pytest

from tests.support.blender import (RecordingLayout, add_rig, addon_module, bpy, extension, generate,  # noqa: F401
                                   prefs, scene, snapshot)

WORKER_OPERATORS = ("generate", "regenerate_range", "fill_gap", "generate_sequence")


def draw(panel) -> RecordingLayout:
    layout = RecordingLayout()
    panel.draw(types.SimpleNamespace(layout=layout), bpy.context)
    return layout


def model_names(prefs) -> dict[str, str]:
    return {identifier: name for identifier, name, *_ in addon_module("preferences").model_items(prefs, None)}


# ------------------------------------------------------------------------------------------------- models
def test_the_chosen_model_stays_with_its_directory(scene, prefs, tmp_path):
    preferences = addon_module("preferences")
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    prefs.model_dirs.clear()
    prefs.model_dirs.add()
    prefs.model_dirs.add().path = second
    prefs.model = second
    prefs.model_dirs[0].path = first  # filling an earlier entry moves nothing
    assert prefs.model == second and preferences.selected_model(prefs) == tmp_path / "second"
    prefs.model_dirs[0].path = ""  # neither does clearing it
    assert prefs.model == second and list(model_names(prefs)) == ["DEFAULT", second]

    prefs.model_dirs[1].path = ""  # the chosen directory leaves the list: shown as missing, refused at Generate
    assert prefs.model == second and model_names(prefs)[second] == "Missing: second"
    add_rig()
    before = snapshot()
    with pytest.raises(RuntimeError, match=r"The model 'second' \(.*second\) is no longer among the model "
                                           "directories in the add-on's preferences: choose another model") as err:
        generate(prompt="a person walks")
    assert "Traceback" not in str(err.value) and snapshot() == before
    prefs.model = "DEFAULT"
    assert "Missing: second" not in model_names(prefs).values()


def test_removing_another_directory_keeps_the_choice(prefs, tmp_path):
    prefs.model_dirs.clear()
    for name in ("a", "b"):
        prefs.model_dirs.add().path = str(tmp_path / name)
    prefs.model = str(tmp_path / "b")
    assert bpy.ops.momask.model_dir_remove(index=0) == {"FINISHED"}
    assert prefs.model == str(tmp_path / "b")
    assert bpy.ops.momask.model_dir_remove(index=0) == {"FINISHED"}  # the chosen one: back to the default
    assert prefs.model == "DEFAULT"


# -------------------------------------------------------------------------------------- greyed-out buttons
def test_buttons_without_an_armature_are_greyed_out_with_the_reason(scene):
    bpy.ops.mesh.primitive_cube_add()
    for name in WORKER_OPERATORS:
        operator = getattr(bpy.ops.momask, name)
        assert not operator.poll()
        with pytest.raises(RuntimeError, match=r"poll\(\) Select an armature to animate \(the active object 'Cube' "
                                               r"is a mesh\); or add one with Add MoMask Rig"):
            operator("EXEC_DEFAULT")
    ob = add_rig()
    assert all(getattr(bpy.ops.momask, name).poll() for name in WORKER_OPERATORS)
    bpy.ops.object.mode_set(mode="EDIT")
    with pytest.raises(RuntimeError, match=f"poll\\(\\) '{ob.name}' is in edit mode: leave edit mode"):
        bpy.ops.momask.fill_gap("EXEC_DEFAULT")
    bpy.ops.object.mode_set(mode="OBJECT")


def test_timeline_buttons_stay_and_say_why_while_a_generation_runs(scene):
    add_rig()
    wm = bpy.context.window_manager
    wm.momask_status = "generate: step 3 of 10"
    try:
        ops = draw(bpy.types.MOMASK_PT_timeline).operators()
        assert {"momask.regenerate_range", "momask.fill_gap", "momask.generate_sequence"} <= ops.keys()
        for name in WORKER_OPERATORS:
            with pytest.raises(RuntimeError, match=r"Wait for the running generation to finish, or press Esc"):
                getattr(bpy.ops.momask, name)("EXEC_DEFAULT")
    finally:
        wm.momask_status = ""


# ------------------------------------------------------------------------------------- options where used
def test_each_timeline_button_takes_the_options_drawn_beside_it(scene):
    add_rig()
    settings, timeline = scene.momask, scene.momask_timeline
    settings.seed, settings.in_place, settings.foot_lock, settings.steps = 9, False, True, 10
    timeline.edit.seed, timeline.edit.steps, timeline.edit.foot_lock = 5, 12, False
    sequence = timeline.sequence
    sequence.seed, sequence.guidance, sequence.in_place, sequence.start_frame, sequence.foot_lock = 7, 2.5, True, 30, False
    layout = draw(bpy.types.MOMASK_PT_timeline)
    props = layout.props()
    assert {("MOMASK_PG_edit_options", name) for name in ("seed", "guidance", "steps", "foot_lock")} <= props
    assert {("MOMASK_PG_sequence_options", name) for name in ("seed", "guidance", "steps", "foot_lock",
                                                              "start_frame", "in_place")} <= props
    ops = layout.operators()
    for name in ("momask.regenerate_range", "momask.fill_gap"):
        assert (ops[name].seed, ops[name].steps, ops[name].foot_lock) == (5, 12, False)
    generate_sequence = ops["momask.generate_sequence"]
    assert (generate_sequence.seed, generate_sequence.guidance, generate_sequence.in_place,
            generate_sequence.start_frame, generate_sequence.foot_lock) == (7, 2.5, True, 30, False)
    labels = {timeline.bl_rna.properties["in_place"].name,
              bpy.ops.momask.regenerate_range.get_rna_type().properties["in_place"].name}
    assert labels == {"Overwrite Action"} and settings.bl_rna.properties["in_place"].name == "In Place"


# ---------------------------------------------------------------------------------------------------- words
def test_tooltips_are_one_line_and_every_property_is_named_and_described(scene):
    for name in dir(bpy.ops.momask):
        rna = getattr(bpy.ops.momask, name).get_rna_type()
        assert rna.description and "\n" not in rna.description and "  " not in rna.description, name
        for prop in rna.properties:
            if prop.identifier != "rna_type" and not prop.is_hidden:
                assert prop.name and prop.description and "\n" not in prop.description, (name, prop.identifier)
    descriptions = {p.identifier: p.description for p in scene.momask.bl_rna.properties}
    for developer_words in ("classifier-free", "transformer", "scripts"):
        assert not [d for d in descriptions.values() if developer_words in d]


def test_bone_mapping_speaks_of_bones_and_rigs(scene):
    ob = add_rig()
    assert bpy.ops.momask.detect_mapping() == {"FINISHED"}
    texts = draw(bpy.types.MOMASK_PT_mapping).texts()
    assert "Table from Detect: a MoMask (SMPL-X) rig: edit any row" in texts
    assert "Bones from the table above" in texts and "preset" not in texts and "given table" not in texts
    row = RecordingLayout()
    bpy.types.MOMASK_UL_mapping.draw_item(None, bpy.context, row, None, ob.data.momask_mapping.joints["left_shoulder"],
                                          0, None, "")
    assert [kw["text"] for name, _, kw, _ in row.calls if name == "label"] == ["Left Upper Arm"]


class Drawn:
    """The preferences as their draw() sees itself, with a recording layout."""

    def __init__(self, prefs):
        self.layout, self._prefs = RecordingLayout(), prefs

    def __getattr__(self, name):
        return getattr(self._prefs, name)


def draw_preferences(prefs) -> RecordingLayout:
    drawn = Drawn(prefs)
    type(prefs).draw(drawn, bpy.context)
    return drawn.layout


def test_preferences_draw_the_worker_and_models_without_install_paths(prefs, monkeypatch):
    installer = addon_module("installer")
    monkeypatch.setattr(installer, "has_nvidia_gpu", lambda: False)
    layout = draw_preferences(prefs)
    props = {args[1] for name, args, *_ in layout.calls if name == "prop"}
    assert "momask.install_worker" in layout.operators()
    assert {"worker_python", "worker_command", "model", "clip_path"} <= props
    assert "torch_build" not in props  # no NVIDIA GPU: no CUDA choice
    assert "models/default" not in layout.texts()
    monkeypatch.setattr(installer, "has_nvidia_gpu", lambda: True)
    assert "torch_build" in {args[1] for name, args, *_ in draw_preferences(prefs).calls if name == "prop"}


def test_clip_file_preference_reaches_the_worker_command(prefs, tmp_path):
    preferences = addon_module("preferences")
    prefs.worker_command, prefs.worker_python = "", str(tmp_path / "python")
    (tmp_path / "python").touch()
    prefs.clip_path = str(tmp_path / "ViT-B-32.pt")
    try:
        assert preferences.worker_command(prefs)[-2:] == ["--clip-path", str(tmp_path / "ViT-B-32.pt")]
    finally:
        prefs.clip_path = ""
    assert "--clip-path" not in preferences.worker_command(prefs)
