"""Compositor wiring on its own: into a user's existing compositor and back out again, with no backend."""

from __future__ import annotations

import bpy
import pytest
from addon_helpers import addon_module


def _images() -> tuple:
    made = []
    for name in ("t_render", "t_bump", "t_mask"):
        image = bpy.data.images.get(name) or bpy.data.images.new(name, 8, 8)
        made.append(image)
    return tuple(made)


def test_wire_into_a_user_compositor_and_clear_gives_it_back(installed):
    comp = addon_module("compositor")
    scene = bpy.data.scenes.new("CompositorTest")
    try:
        tree = bpy.data.node_groups.new("User Compositor", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        layers = tree.nodes.new("CompositorNodeRLayers")
        layers.scene = scene
        output = tree.nodes.new("NodeGroupOutput")
        tree.links.new(layers.outputs["Image"], output.inputs[0])
        scene.compositing_node_group = tree
        render, bump, mask = _images()

        mix = comp.wire_result(scene, render, bump, mask, 0.7)
        count = len(tree.nodes)
        assert output.inputs[0].links[0].from_node == mix
        assert mix.inputs["Factor"].default_value == pytest.approx(0.7) and mix.node_tree.name == comp.GROUP_NAME
        comp.wire_result(scene, render, bump, None, 0.5)  # again, without a mask: same nodes, mask full
        assert len(tree.nodes) == count and not mix.inputs["Mask"].links
        assert mix.inputs["Mask"].default_value == 1.0

        assert comp.clear_result(scene)
        assert scene.compositing_node_group == tree and len(tree.nodes) == 2
        assert output.inputs[0].links[0].from_node == layers  # the user's wiring is back
        group = bpy.data.node_groups.get(comp.GROUP_NAME)
        assert group is None or group.users > 0  # kept only while another scene's result uses it
        assert not comp.clear_result(scene)
    finally:
        bpy.data.node_groups.remove(bpy.data.node_groups["User Compositor"])
        bpy.data.scenes.remove(scene)


def test_a_tree_we_created_is_removed_again(installed):
    comp = addon_module("compositor")
    scene = bpy.data.scenes.new("NoCompositor")
    try:
        assert scene.compositing_node_group is None
        comp.wire_result(scene, *_images(), 1.0)
        created = scene.compositing_node_group
        assert created is not None and created.get(comp.CREATED_TREE)
        name = created.name
        assert comp.clear_result(scene)
        assert scene.compositing_node_group is None and name not in bpy.data.node_groups
    finally:
        bpy.data.scenes.remove(scene)


def test_a_renamed_mix_group_is_reused_not_duplicated(installed):
    """The user renames "BumpStudio Mix" in the node editor; the next bump must use it, not add a second one."""
    comp = addon_module("compositor")
    scene = bpy.data.scenes.new("RenamedGroup")
    try:
        comp.wire_result(scene, *_images(), 1.0)
        group = scene.compositing_node_group.nodes[comp.NODE_MIX].node_tree
        group.name = "My bump blend"
        before = len(bpy.data.node_groups)
        mix = comp.wire_result(scene, *_images(), 0.4)
        assert mix.node_tree == group and group.name == "My bump blend"
        assert len(bpy.data.node_groups) == before
        assert [g.name for g in bpy.data.node_groups if g.get(comp.GROUP_TAG)] == ["My bump blend"]
        assert comp.clear_result(scene)
    finally:
        bpy.data.scenes.remove(scene)
        for group in [g for g in bpy.data.node_groups if g.get(comp.GROUP_TAG) and g.users == 0]:
            bpy.data.node_groups.remove(group)
