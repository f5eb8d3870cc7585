"""The bump result in the scene's compositor: the bumped image over the render, through the mask.

Blender 5 keeps a scene's compositor in ``scene.compositing_node_group`` (a CompositorNodeTree
with a Group Output); 4.x in ``scene.node_tree`` (with a Composite node). Our nodes are named
``BumpStudio ...`` and found by name, so a second result reuses them instead of adding more.
The mixing itself is a node group (``BumpStudio Mix``: Render, Bump, Mask, Factor -> Image) so
the scene's tree gets one readable node and the factor is one socket the user can change; the
group carries a custom property (``GROUP_TAG``) and is found by it, so renaming it is harmless.
"""

from __future__ import annotations

import bpy

PREFIX = "BumpStudio"
GROUP_NAME = f"{PREFIX} Mix"
FRAME = f"{PREFIX} Result"
NODE_RENDER, NODE_BUMP, NODE_MASK, NODE_MIX = (f"{PREFIX} {n}" for n in ("Render", "Bump", "Mask", "Mix"))
OUR_NODES = (FRAME, NODE_RENDER, NODE_BUMP, NODE_MASK, NODE_MIX)
GROUP_TAG = "bump_studio_mix"  # marks our mix group (its value: the layout version), whatever its name
GROUP_VERSION = 1
CREATED_TREE = "bump_studio_created"  # marks a scene tree we created (removed again on clear)
PREVIOUS = "bump_studio_previous"  # "node|socket" that fed the output before us

BLENDER_5 = bpy.app.version >= (5, 0, 0)


def scene_tree(scene: bpy.types.Scene, create: bool = True) -> bpy.types.NodeTree | None:
    """The scene's compositor tree (created with an output when missing and ``create``)."""
    if BLENDER_5:
        tree = scene.compositing_node_group
        if tree is None and create:
            tree = bpy.data.node_groups.new(f"{scene.name} Compositor", "CompositorNodeTree")
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
            tree[CREATED_TREE] = True
            scene.compositing_node_group = tree
        return tree
    if not scene.use_nodes and create:
        scene.use_nodes = True
    return scene.node_tree


def _output_socket(tree: bpy.types.NodeTree) -> bpy.types.NodeSocket:
    """The socket the compositor's final image goes into (Group Output in 5.x, Composite in 4.x)."""
    kind = "NodeGroupOutput" if BLENDER_5 else "CompositorNodeComposite"
    if BLENDER_5 and not any(getattr(i, "in_out", "") == "OUTPUT" for i in tree.interface.items_tree):
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    outputs = [n for n in tree.nodes if n.bl_idname == kind]
    active = [n for n in outputs if getattr(n, "is_active_output", False)]
    node = (active or outputs or [None])[0]
    if node is None:
        node = tree.nodes.new(kind)
        node.location = (600, 0)
    return node.inputs[0]


def find_mix_group() -> bpy.types.NodeTree | None:
    """Our mix group, found by its tag (a user may rename it), else by name (files from before the tag)."""
    tagged = [g for g in bpy.data.node_groups if g.get(GROUP_TAG) is not None]
    if tagged:
        return max(tagged, key=lambda g: g.users)  # the one in use if a copy was appended from another file
    return bpy.data.node_groups.get(GROUP_NAME)


def _mix_group() -> bpy.types.NodeTree:
    """``BumpStudio Mix``: Image = mix(Render, Bump, Mask * Factor); rebuilt if someone broke it."""
    group = find_mix_group()
    expected_in = ["Render", "Bump", "Mask", "Factor"]
    if group is not None and group.bl_idname == "CompositorNodeTree":
        names = [i.name for i in group.interface.items_tree if getattr(i, "in_out", "") == "INPUT"]
        if names == expected_in and len(group.nodes) == 4:
            group[GROUP_TAG] = GROUP_VERSION
            return group
        bpy.data.node_groups.remove(group)
    group = bpy.data.node_groups.new(GROUP_NAME, "CompositorNodeTree")
    group[GROUP_TAG] = GROUP_VERSION
    face = group.interface
    face.new_socket("Render", in_out="INPUT", socket_type="NodeSocketColor")
    face.new_socket("Bump", in_out="INPUT", socket_type="NodeSocketColor")
    mask = face.new_socket("Mask", in_out="INPUT", socket_type="NodeSocketFloat")
    mask.min_value, mask.max_value, mask.default_value = 0.0, 1.0, 1.0
    factor = face.new_socket("Factor", in_out="INPUT", socket_type="NodeSocketFloat")
    factor.min_value, factor.max_value, factor.default_value = 0.0, 1.0, 1.0
    if hasattr(factor, "subtype"):
        factor.subtype = "FACTOR"
    face.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    nodes, links = group.nodes, group.links
    inp = nodes.new("NodeGroupInput")
    out = nodes.new("NodeGroupOutput")
    times = nodes.new("ShaderNodeMath" if BLENDER_5 else "CompositorNodeMath")
    times.operation = "MULTIPLY"
    times.use_clamp = True
    inp.location, times.location, out.location = (-400, 0), (-150, -150), (300, 0)
    if BLENDER_5:
        mix = nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        mix.blend_type = "MIX"
        fac, a, b, result = mix.inputs["Factor"], mix.inputs[6], mix.inputs[7], mix.outputs[2]
    else:
        mix = nodes.new("CompositorNodeMixRGB")
        fac, a, b, result = mix.inputs[0], mix.inputs[1], mix.inputs[2], mix.outputs[0]
    mix.location = (80, 0)
    links.new(inp.outputs["Mask"], times.inputs[0])
    links.new(inp.outputs["Factor"], times.inputs[1])
    links.new(times.outputs[0], fac)
    links.new(inp.outputs["Render"], a)
    links.new(inp.outputs["Bump"], b)
    links.new(result, out.inputs["Image"])
    return group


def _node(tree: bpy.types.NodeTree, name: str, kind: str, location: tuple[float, float]) -> bpy.types.Node:
    node = tree.nodes.get(name)
    if node is not None and node.bl_idname != kind:
        tree.nodes.remove(node)
        node = None
    if node is None:
        node = tree.nodes.new(kind)
        node.name = name
        node.location = location
    node.label = name.removeprefix(f"{PREFIX} ")
    return node


def wire_result(scene: bpy.types.Scene, render: bpy.types.Image, bump: bpy.types.Image,
                mask: bpy.types.Image | None, factor: float, frames: tuple[int, int] | None = None) -> bpy.types.Node:
    """Put (or update) the result nodes in the scene's compositor; returns the mix group node.

    ``frames`` = (first scene frame, count) for image sequences (a bumped frame range): the image nodes
    then play file 1 at the first frame, file ``count`` at the last.
    """
    tree = scene_tree(scene)
    output = _output_socket(tree)
    frame = _node(tree, FRAME, "NodeFrame", (-900, 400))
    frame.label = "Bump Studio result"
    images = []
    for index, (name, image) in enumerate(((NODE_RENDER, render), (NODE_BUMP, bump), (NODE_MASK, mask))):
        node = _node(tree, name, "CompositorNodeImage", (-800, 300 - 220 * index))
        node.image = image
        node.parent = frame
        if frames is not None:
            node.frame_start, node.frame_duration, node.frame_offset = frames[0], frames[1], 0
            node.use_cyclic, node.use_auto_refresh = False, True
        images.append(node)
    mix = _node(tree, NODE_MIX, "CompositorNodeGroup", (-450, 200))
    mix.node_tree = _mix_group()
    mix.parent = frame
    links = tree.links
    for node, socket in zip(images, ("Render", "Bump", "Mask"), strict=True):
        for link in list(mix.inputs[socket].links):
            links.remove(link)
        if node.image is not None:
            links.new(node.outputs["Image"], mix.inputs[socket])
    if mask is None:
        mix.inputs["Mask"].default_value = 1.0
    mix.inputs["Factor"].default_value = factor
    if PREVIOUS not in mix:
        feeding = [lk for lk in output.links if lk.from_node != mix]
        mix[PREVIOUS] = f"{feeding[0].from_node.name}|{feeding[0].from_socket.identifier}" if feeding else ""
    for link in list(output.links):
        links.remove(link)
    links.new(mix.outputs["Image"], output)
    return mix


def set_factor(scene: bpy.types.Scene, factor: float) -> None:
    tree = scene_tree(scene, create=False)
    node = tree.nodes.get(NODE_MIX) if tree is not None else None
    if node is not None:
        node.inputs["Factor"].default_value = factor


def clear_result(scene: bpy.types.Scene) -> bool:
    """Remove our nodes, give the output back to what fed it before, drop a tree we created."""
    tree = scene_tree(scene, create=False)
    if tree is None or tree.nodes.get(NODE_MIX) is None:
        return False
    mix = tree.nodes[NODE_MIX]
    previous = str(mix.get(PREVIOUS, ""))
    output = _output_socket(tree)
    for name in OUR_NODES:
        node = tree.nodes.get(name)
        if node is not None:
            tree.nodes.remove(node)
    if previous:
        node_name, _, identifier = previous.partition("|")
        source = tree.nodes.get(node_name)
        socket = next((s for s in source.outputs if s.identifier == identifier), None) if source else None
        if socket is not None:
            tree.links.new(socket, output)
    if BLENDER_5 and tree.get(CREATED_TREE) and all(n.bl_idname == "NodeGroupOutput" for n in tree.nodes):
        scene.compositing_node_group = None
        bpy.data.node_groups.remove(tree)
    group = find_mix_group()
    if group is not None and group.users == 0:
        bpy.data.node_groups.remove(group)
    return True
