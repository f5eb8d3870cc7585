"""The built-in demo character: a MakeHuman/MPFB2 human shaped by a phenotype, built in Blender.

Shape, part masks, the rig placed on the shaped body and its skin weights are computed in numpy
(:mod:`profile_rig.core.mpfb_data`, :mod:`profile_rig.core.demo_shape`,
:mod:`profile_rig.core.rig_data`); this module only turns them into Blender objects, materials, an
armature (MPFB2's default, game-engine, Mixamo or Rigify-metarig bones, found by the head finder like
any user rig), vertex groups with an Armature modifier and expression shape keys.
"""

from __future__ import annotations

import bpy
import numpy as np

from profile_rig.core.demo_shape import DemoShape, build_demo_shape
from profile_rig.core.expressions import expression_offsets
from profile_rig.core.mpfb_data import data_root, load_base_mesh
from profile_rig.core.phenotype import Phenotype
from profile_rig.core.rig_data import DEFAULT_RIG

DEMO_TAG = "bump_demo_character"
SOURCE_INDEX_ATTRIBUTE = "mpfb_index"  # base-mesh vertex each vertex follows, for building expression keys later
ETHNICITY_PROPERTY = "bump_ethnicity"
PRESET_EXPRESSION_KEYS = ("smile", "open_mouth", "brows_up", "blink")
BACK_COLLAR_DEPTH_M = 0.035


def _set_input(node, names: tuple[str, ...], value) -> None:
    for name in names:
        if name in node.inputs:
            node.inputs[name].default_value = value
            return


def _principled(material: bpy.types.Material):
    material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    bsdf = tree.nodes.new("ShaderNodeBsdfPrincipled")
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(bsdf.outputs["BSDF"], output.inputs["Surface"])
    return tree, bsdf


def _mix_rgb(tree, factor_socket, color_a, color_b_socket_or_value):
    mix = tree.nodes.new("ShaderNodeMix")
    mix.data_type = "RGBA"
    mix.blend_type = "MIX"
    tree.links.new(factor_socket, mix.inputs[0])
    if isinstance(color_a, bpy.types.NodeSocket):
        tree.links.new(color_a, mix.inputs[6])
    else:
        mix.inputs[6].default_value = color_a
    if isinstance(color_b_socket_or_value, bpy.types.NodeSocket):
        tree.links.new(color_b_socket_or_value, mix.inputs[7])
    else:
        mix.inputs[7].default_value = color_b_socket_or_value
    return mix.outputs[2]


def _attribute(tree, name: str, output: str = "Fac"):
    node = tree.nodes.new("ShaderNodeAttribute")
    node.attribute_name = name
    return node.outputs[output]


def _uv_mask(tree, file_name: str):
    """A MakeHuman UV-space mask (lips, eyelids) from the MPFB2 textures, as a 0..1 factor."""
    node = tree.nodes.new("ShaderNodeTexImage")
    node.image = bpy.data.images.load(str(data_root() / "textures" / file_name), check_existing=True)
    node.image.colorspace_settings.name = "Non-Color"
    uv = tree.nodes.new("ShaderNodeUVMap")
    uv.uv_map = "UVMap"
    tree.links.new(uv.outputs["UV"], node.inputs["Vector"])
    return node.outputs["Color"]


def skin_material(phenotype: Phenotype, name: str, neckline: tuple[float, float, float, float, float]) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    tree, bsdf = _principled(material)
    skin = (*phenotype.skin_color(), 1.0)
    hair = (*phenotype.hair_rgb(), 1.0)
    lips = tuple(c * m for c, m in zip(skin[:3], (0.78, 0.48, 0.46), strict=True)) + (1.0,)

    coords = tree.nodes.new("ShaderNodeTexCoord")
    mottling = tree.nodes.new("ShaderNodeTexNoise")
    mottling.inputs["Scale"].default_value = 9.0
    mottling.inputs["Detail"].default_value = 4.0
    mottling.noise_dimensions = "4D"
    mottling.inputs["W"].default_value = (phenotype.variation_seed() % 1000) / 10.0
    tree.links.new(coords.outputs["Object"], mottling.inputs["Vector"])
    ramp = tree.nodes.new("ShaderNodeMapRange")
    ramp.inputs["From Min"].default_value = 0.3
    ramp.inputs["From Max"].default_value = 0.7
    ramp.inputs["To Min"].default_value = 0.0
    ramp.inputs["To Max"].default_value = 0.18
    tree.links.new(mottling.outputs["Fac"], ramp.inputs["Value"])
    ruddy = tuple(c * m for c, m in zip(skin[:3], (1.0, 0.82, 0.8), strict=True)) + (1.0,)
    color = _mix_rgb(tree, ramp.outputs["Result"], skin, ruddy)
    color = _mix_rgb(tree, _uv_mask(tree, "mpfb_lips.jpg"), color, lips)
    brow = tree.nodes.new("ShaderNodeMath")
    brow.operation = "MULTIPLY"
    brow.inputs[1].default_value = 0.85
    tree.links.new(_attribute(tree, "brow_mask"), brow.inputs[0])
    color = _mix_rgb(tree, brow.outputs[0], color, hair)
    scalp = _smoothstep(tree, _attribute(tree, "hair_sd"), -0.002, 0.006)
    color = _mix_rgb(tree, scalp, color, tuple(c * 0.8 for c in hair[:3]) + (1.0,))
    tree.links.new(color, bsdf.inputs["Base Color"])

    pores = tree.nodes.new("ShaderNodeTexNoise")
    pores.inputs["Scale"].default_value = 900.0
    pores.inputs["Detail"].default_value = 2.0
    tree.links.new(coords.outputs["Object"], pores.inputs["Vector"])
    bump = tree.nodes.new("ShaderNodeBump")
    bump.inputs["Strength"].default_value = 0.08
    bump.inputs["Distance"].default_value = 0.0004
    tree.links.new(pores.outputs["Fac"], bump.inputs["Height"])
    tree.links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])

    _set_input(bsdf, ("Roughness",), 0.48)
    _set_input(bsdf, ("Specular IOR Level",), 0.45)
    _set_input(bsdf, ("Subsurface Weight",), 0.25)
    _set_input(bsdf, ("Subsurface Radius",), (1.0, 0.35, 0.2))
    _set_input(bsdf, ("Subsurface Scale",), 0.006)
    _set_input(bsdf, ("Sheen Weight",), 0.05)

    # the top is painted onto the body below a smooth crew neckline
    fabric = tree.nodes.new("ShaderNodeBsdfPrincipled")
    _set_input(fabric, ("Base Color",), (0.045, 0.05, 0.06, 1.0))
    _set_input(fabric, ("Roughness",), 0.9)
    _set_input(fabric, ("Sheen Weight",), 0.5)
    weave = tree.nodes.new("ShaderNodeTexNoise")
    weave.inputs["Scale"].default_value = 300.0
    tree.links.new(coords.outputs["Object"], weave.inputs["Vector"])
    fabric_bump = tree.nodes.new("ShaderNodeBump")
    fabric_bump.inputs["Strength"].default_value = 0.15
    tree.links.new(weave.outputs["Fac"], fabric_bump.inputs["Height"])
    tree.links.new(fabric_bump.outputs["Normal"], fabric.inputs["Normal"])
    mix = tree.nodes.new("ShaderNodeMixShader")
    tree.links.new(_smoothstep(tree, _neckline_distance(tree, coords, neckline), -0.0012, 0.0012), mix.inputs["Fac"])
    output = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeOutputMaterial")
    tree.links.new(bsdf.outputs["BSDF"], mix.inputs[1])
    tree.links.new(fabric.outputs["BSDF"], mix.inputs[2])
    tree.links.new(mix.outputs["Shader"], output.inputs["Surface"])
    material[DEMO_TAG] = True
    return material


def _math(tree, operation: str, a, b=None):
    node = tree.nodes.new("ShaderNodeMath")
    node.operation = operation
    for index, value in enumerate((a, b)):
        if value is None:
            continue
        if isinstance(value, bpy.types.NodeSocket):
            tree.links.new(value, node.inputs[index])
        else:
            node.inputs[index].default_value = value
    return node.outputs[0]


def _neckline_distance(tree, coords, neckline: tuple[float, float, float, float, float]):
    """Per-pixel metres inside the painted top (object space): smooth at any mesh density.

    A crew neck is a cylinder around the neck (wider toward the front) cut by a plane below the
    chin: ``min(radial - radius(y), top_z - z)``. The shoulder tops are nearly level, so a
    height-only cut would wander; the radial distance crosses them cleanly.
    """
    neck_x, neck_y, radius, scoop, top_z = neckline
    xyz = tree.nodes.new("ShaderNodeSeparateXYZ")
    tree.links.new(coords.outputs["Object"], xyz.inputs["Vector"])
    dx = _math(tree, "SUBTRACT", xyz.outputs["X"], neck_x)
    dy = _math(tree, "SUBTRACT", xyz.outputs["Y"], neck_y)
    radial = _math(tree, "SQRT", _math(tree, "ADD", _math(tree, "MULTIPLY", dx, dx), _math(tree, "MULTIPLY", dy, dy)))
    front = _math(tree, "MINIMUM", _math(tree, "MAXIMUM", _math(tree, "DIVIDE", dy, -0.12), 0.0), 1.0)
    reach = _math(tree, "ADD", radius, _math(tree, "MULTIPLY", _math(tree, "MULTIPLY", front, front), scoop))
    outside = _math(tree, "SUBTRACT", radial, reach)
    below = _math(tree, "SUBTRACT", top_z, xyz.outputs["Z"])
    collar = _math(tree, "MINIMUM", outside, below)
    # behind the neck the upper back lies within the cylinder: a few cm below the collar it is
    # always the top, or a turned-away view shows a bare strip down the spine
    back = _math(tree, "MINIMUM", _math(tree, "MAXIMUM", _math(tree, "DIVIDE", dy, radius), 0.0), 1.0)
    across = _math(tree, "DIVIDE", dx, radius)
    rounded = _math(tree, "MAXIMUM", _math(tree, "SUBTRACT", 1.0, _math(tree, "MULTIPLY", across, across)), 0.0)
    depth = _math(tree, "MULTIPLY", _math(tree, "MULTIPLY", rounded, back), BACK_COLLAR_DEPTH_M)
    behind = _math(tree, "MINIMUM", _math(tree, "MAXIMUM", _math(tree, "DIVIDE", dy, 0.015), 0.0), 1.0)
    deep = _math(tree, "SUBTRACT", _math(tree, "SUBTRACT", below, depth), _math(tree, "SUBTRACT", 1.0, behind))
    return _math(tree, "MAXIMUM", collar, deep)


def _smoothstep(tree, socket, low: float, high: float):
    node = tree.nodes.new("ShaderNodeMapRange")
    node.interpolation_type = "SMOOTHSTEP"
    node.inputs["From Min"].default_value = low
    node.inputs["From Max"].default_value = high
    tree.links.new(socket, node.inputs["Value"])
    return node.outputs["Result"]


def eye_material(phenotype: Phenotype, name: str) -> bpy.types.Material:
    """Procedural eyeball: sclera, limbal ring, iris, pupil from the angle to the eye's axis."""
    material = bpy.data.materials.new(name)
    tree, bsdf = _principled(material)
    local = _attribute(tree, "eye_local", "Vector")
    normalise = tree.nodes.new("ShaderNodeVectorMath")
    normalise.operation = "NORMALIZE"
    tree.links.new(local, normalise.inputs[0])
    dot = tree.nodes.new("ShaderNodeVectorMath")
    dot.operation = "DOT_PRODUCT"
    dot.inputs[1].default_value = (0.0, -1.0, 0.0)
    tree.links.new(normalise.outputs["Vector"], dot.inputs[0])
    ramp = tree.nodes.new("ShaderNodeValToRGB")
    iris = (*phenotype.eye_rgb(), 1.0)
    dark_iris = tuple(c * 0.45 for c in iris[:3]) + (1.0,)
    stops = ramp.color_ramp.elements
    stops[0].position, stops[0].color = 0.0, (0.62, 0.6, 0.58, 1.0)
    stops[1].position, stops[1].color = 0.88, (0.66, 0.64, 0.62, 1.0)
    for position, color in ((0.905, (0.05, 0.04, 0.035, 1.0)), (0.915, dark_iris), (0.97, iris), (0.985, (0.01, 0.01, 0.01, 1.0))):
        stop = stops.new(position)
        stop.color = color
    tree.links.new(dot.outputs["Value"], ramp.inputs["Fac"])
    tree.links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    _set_input(bsdf, ("Roughness",), 0.25)
    _set_input(bsdf, ("Coat Weight",), 1.0)
    _set_input(bsdf, ("Coat Roughness",), 0.03)
    return material


def flat_material(name: str, color, roughness: float, sheen: float = 0.0, alpha: float = 1.0) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    tree, bsdf = _principled(material)
    _set_input(bsdf, ("Base Color",), (*color, 1.0))
    _set_input(bsdf, ("Roughness",), roughness)
    _set_input(bsdf, ("Sheen Weight",), sheen)
    _set_input(bsdf, ("Alpha",), alpha)
    return material


def hair_material(phenotype: Phenotype, name: str) -> bpy.types.Material:
    """A scalp-cap 'hair' with stretched noise so it reads as short hair, not paint."""
    material = bpy.data.materials.new(name)
    tree, bsdf = _principled(material)
    coords = tree.nodes.new("ShaderNodeTexCoord")
    mapping = tree.nodes.new("ShaderNodeMapping")
    mapping.inputs["Scale"].default_value = (220.0, 220.0, 20.0)
    tree.links.new(coords.outputs["Object"], mapping.inputs["Vector"])
    strands = tree.nodes.new("ShaderNodeTexNoise")
    strands.inputs["Scale"].default_value = 1.0
    strands.inputs["Detail"].default_value = 6.0
    tree.links.new(mapping.outputs["Vector"], strands.inputs["Vector"])
    base = phenotype.hair_rgb()
    light = tuple(min(1.0, c * 2.2 + 0.01) for c in base)
    color = _mix_rgb(tree, strands.outputs["Fac"], (*base, 1.0), (*light, 1.0))
    tree.links.new(color, bsdf.inputs["Base Color"])
    bump = tree.nodes.new("ShaderNodeBump")
    bump.inputs["Strength"].default_value = 0.4
    tree.links.new(strands.outputs["Fac"], bump.inputs["Height"])
    tree.links.new(bump.outputs["Normal"], bsdf.inputs["Normal"])
    _set_input(bsdf, ("Roughness",), 0.55)
    _set_input(bsdf, ("Sheen Weight",), 0.3)
    _set_input(bsdf, ("Specular IOR Level",), 0.3)
    # fade out at the hairline so the cap has a soft edge instead of the mesh's quads
    tree.links.new(_smoothstep(tree, _attribute(tree, "hair_sd"), -0.001, 0.005), bsdf.inputs["Alpha"])
    return material


def _mesh_from_shape(name: str, shape: DemoShape) -> bpy.types.Mesh:
    mesh = bpy.data.meshes.new(name)
    faces = shape.faces
    loop_totals = np.array([len(f) for f in faces], np.int32)
    loop_starts = np.concatenate([[0], np.cumsum(loop_totals)[:-1]]).astype(np.int32)
    corners = np.concatenate(faces).astype(np.int32)
    mesh.vertices.add(len(shape.vertices))
    mesh.vertices.foreach_set("co", shape.vertices.astype(np.float32).ravel())
    mesh.loops.add(len(corners))
    mesh.loops.foreach_set("vertex_index", corners)
    mesh.polygons.add(len(faces))
    mesh.polygons.foreach_set("loop_start", loop_starts)
    mesh.polygons.foreach_set("loop_total", loop_totals)
    mesh.polygons.foreach_set("material_index", shape.material_index.astype(np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(len(faces), bool))
    for attr_name, values in shape.point_attributes.items():
        kind = "FLOAT_VECTOR" if values.ndim == 2 else "FLOAT"
        attribute = mesh.attributes.new(attr_name, kind, "POINT")
        attribute.data.foreach_set("vector" if kind == "FLOAT_VECTOR" else "value", values.astype(np.float32).ravel())
    for attr_name, values in shape.corner_attributes.items():
        attribute = mesh.attributes.new(attr_name, "FLOAT", "CORNER")
        attribute.data.foreach_set("value", values.astype(np.float32))
    if shape.corner_uvs is not None:
        uv = mesh.uv_layers.new(name="UVMap")
        uv.data.foreach_set("uv", shape.corner_uvs.astype(np.float32).ravel())
    mesh.validate()
    mesh.update()
    return mesh


def _armature(name: str, shape: DemoShape, collection: bpy.types.Collection) -> bpy.types.Object:
    data = bpy.data.armatures.new(f"{name}_rig")
    rig = bpy.data.objects.new(name, data)
    collection.objects.link(rig)
    view_layer = bpy.context.view_layer
    previous = view_layer.objects.active
    view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bones = {}
        for bone_name, placed in shape.bones.items():
            bone = data.edit_bones.new(bone_name)
            bone.head, bone.tail = placed.head.tolist(), placed.tail.tolist()
            bone.roll = placed.roll
            bone.use_deform = bone_name in shape.weights
            if placed.parent:
                bone.parent = bones[placed.parent]
            bones[bone_name] = bone
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer.objects.active = previous
    return rig


def build_demo_character(
    phenotype: Phenotype,
    collection: bpy.types.Collection | None = None,
    *,
    subdivision: int = 1,
    rig_name: str = DEFAULT_RIG,
    expression_keys: tuple[str, ...] = PRESET_EXPRESSION_KEYS,
) -> bpy.types.Object:
    """Create the character (armature with the skinned body mesh as child) and return the armature."""
    shape = build_demo_shape(phenotype, rig=rig_name)
    collection = collection or bpy.context.scene.collection
    name = phenotype.name
    rig = _armature(name, shape, collection)
    rig[DEMO_TAG] = True
    rig["bump_phenotype"] = repr(phenotype.to_dict())
    rig["bump_demo_rig"] = rig_name
    mesh = _mesh_from_shape(f"{name}_body", shape)
    materials = {
        "skin": skin_material(phenotype, f"{name}_skin", shape.neckline),
        "eyes": eye_material(phenotype, f"{name}_eyes"),
        "mouth": flat_material(f"{name}_mouth", (0.6, 0.5, 0.45), 0.4),
        "lashes": flat_material(f"{name}_lashes", tuple(c * 0.6 for c in phenotype.hair_rgb()), 0.6, alpha=0.85),
        "hair": hair_material(phenotype, f"{name}_hair"),
    }
    for slot in shape.material_slots:
        mesh.materials.append(materials[slot])
    body = bpy.data.objects.new(f"{name}_body", mesh)
    body[DEMO_TAG] = True
    collection.objects.link(body)
    body.parent = rig
    body[ETHNICITY_PROPERTY] = phenotype.ethnicity_weights()
    _skin(body, rig, shape)
    for name in expression_keys:
        ensure_expression_key(body, name)
    if subdivision > 0:
        modifier = body.modifiers.new("Subdivision", "SUBSURF")
        modifier.levels = 0
        modifier.render_levels = subdivision
    return rig


def _skin(body: bpy.types.Object, rig: bpy.types.Object, shape: DemoShape) -> None:
    """Vertex groups from the rig's weights and an Armature modifier (before any subdivision)."""
    for group_name, (ids, weights) in shape.weights.items():
        group = body.vertex_groups.new(name=group_name)
        # one call per distinct weight keeps this fast (weights are quantised in the data)
        order = np.argsort(weights, kind="stable")
        values, starts = np.unique(weights[order], return_index=True)
        for value, chunk in zip(values, np.split(ids[order], starts[1:]), strict=True):
            group.add(chunk.tolist(), float(value), "REPLACE")
    attribute = body.data.attributes.new(SOURCE_INDEX_ATTRIBUTE, "INT", "POINT")
    attribute.data.foreach_set("value", shape.source_index.astype(np.int32))
    modifier = body.modifiers.new("Armature", "ARMATURE")
    modifier.object = rig
    modifier.use_deform_preserve_volume = True


def ensure_expression_key(body: bpy.types.Object, name: str) -> bpy.types.ShapeKey:
    """The body's shape key for a named expression or unit, built from the MPFB2 data on first use."""
    keys = body.data.shape_keys
    if keys is not None and name in keys.key_blocks:
        return keys.key_blocks[name]
    attribute = body.data.attributes.get(SOURCE_INDEX_ATTRIBUTE)
    if attribute is None:
        raise KeyError(f"{body.name} has no shape key {name!r}")
    count = len(body.data.vertices)
    source = np.empty(count, np.int32)
    attribute.data.foreach_get("value", source)
    ethnicity = {k: float(v) for k, v in body.get(ETHNICITY_PROPERTY, {"caucasian": 1.0}).items()}
    offsets = expression_offsets(name, ethnicity, source, len(load_base_mesh().vertices))
    if body.data.shape_keys is None:
        body.shape_key_add(name="Basis", from_mix=False)
    key = body.shape_key_add(name=name, from_mix=False)
    co = np.empty(count * 3, np.float32)
    body.data.vertices.foreach_get("co", co)
    key.data.foreach_set("co", (co.reshape(-1, 3) + offsets).astype(np.float32).ravel())
    key.value = 0.0
    key.slider_max = 1.0
    return key
