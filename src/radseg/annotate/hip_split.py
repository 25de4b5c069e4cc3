"""Split the bone around each femoral head into femoral head and acetabulum (3D, working layout).

Label definitions follow the ``hip-ct`` phantom (and the THA dataset): the **femoral head** is
femur inside the head sphere on the head side of the head-neck plane; the **acetabulum** is
that side's pelvic bone in the axial slab the head spans (``|z - head z| <= head radius``).

Steps: the joint space is found on the radial bone-occupancy profile around the fitted
sphere (:func:`joint_space`); the bone outside the balls splits into 3D components, and the
femur and the pelvis of a side are the components touching the ball from below-laterally
(the neck) and from above-medially (the socket) (:func:`split_sides`). A bridge across a
narrow joint space (osteophytes, partial volume) is cut by a watershed of the component's
distance transform between the two contacts, at the bridge's narrowest. Bone between the
head's surface and the split radius (socket where the joint space narrows) goes to the
nearer of femur and pelvis. The head-neck plane is perpendicular to the neck axis (the
direction of the femur's contact with the ball) where a neck of :data:`NECK_RATIO` head
radii meets the sphere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from radseg.annotate import morphology
from radseg.geometry import ball_box, box_distances, fit_sphere, sphere_directions

__all__ = ["FemoralHead", "fit_head_surface", "joint_space", "open_joint", "split_sides"]

CONTACT_MM = 3.0
# a sphere's surface normal points at its centre; the neck, its fillet and osteophytes tilt away
RADIAL_COS = 0.9
#: Neck radius over head radius where they meet (a typical adult value; the neck's own outline
#: there is blurred by the fillet and by osteophytes, so it is not measured). The hip-ct phantom
#: is built with the same ratio.
NECK_RATIO = 0.68
#: The sacral corridor (:func:`_sacral_corridor`), as fractions of the half distance between the heads.
SACRUM_HALF_WIDTH = 0.3
SACRUM_BEHIND = 0.4
#: Within this many head radii, a femur holds no bone above-medially of its head (:func:`_socket_side_to_pelvis`).
FEMUR_REACH = 2.5


@dataclass
class FemoralHead:
    """One side's femoral head as found: centre (working index), head radius and split radius (mm).
    (Not a :class:`radseg.geometry.Sphere`: its centre is a grid index, its radii are mm.)"""

    side: str
    centre: np.ndarray
    radius: float  # the head's own surface
    split: float  # inside the joint space; bone within belongs to the femur's head


def fit_head_surface(mask: np.ndarray, centre: np.ndarray, radius: float, spacing: np.ndarray,
                     *, rounds: int = 6) -> tuple[np.ndarray, float, float] | None:
    """``(centre, radius, coverage)``: the head sphere refitted to the bone surface within ``radius``
    +- 20 % of ``centre`` (working index, mm); ``coverage`` is the fraction of directions (of 200)
    in which the fitted sphere has surface points.

    Surface points are the centres of bone voxels with a non-bone 6-neighbour, moved out by half
    a pixel along their normal; points off the sphere (the neck, a flattened cap, cysts, the socket)
    are trimmed over a few rounds (residual beyond 1.5 mm or 2 pixels, plus half the voxel along the
    point's normal, then 2.5 robust spreads).
    """
    box = ball_box(mask.shape, centre, 1.2 * radius, spacing)
    bone = mask[box]
    surface = bone & ~ndimage.binary_erosion(bone, structure=ndimage.generate_binary_structure(3, 1), border_value=1)
    origin = np.array([b.start for b in box])
    points = (np.argwhere(surface) + origin - centre) * spacing
    if len(points) < 50:
        return None
    normals = np.stack(np.gradient(ndimage.gaussian_filter(bone.astype(np.float32), 1.0), *spacing), axis=-1)[surface]
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-6)  # into the bone
    # a surface voxel's centre lies about half a pixel inside the surface (not half a thick slice:
    # across slices the mask edge follows the partial-volume half maximum)
    points = points - 0.5 * float(spacing[1:].mean()) * normals
    c, r = np.zeros(3), radius
    norms = np.linalg.norm(points, axis=1)
    # the head's surface has its bone inside (the normal into the bone points at the centre, within
    # 25 degrees); the socket's concave surface, facing it across the joint space, has it outside
    convex = np.sum(normals * points, axis=1) < -RADIAL_COS * norms
    keep = convex & (np.abs(norms - radius) <= 0.2 * radius)
    # a point's position is as uncertain as the voxel along its normal: half a slice on the cap
    # of a thick-slice scan, half a pixel on the side (one tolerance for all lets osteophytes in)
    slack = 0.5 * np.abs(normals @ spacing)
    tolerance = max(1.5, 2.0 * float(spacing[1:].max()))
    for _ in range(rounds):
        if keep.sum() < 50:
            return None
        fitted = fit_sphere(points[keep], method="algebraic")
        c, r = fitted.centre, fitted.radius
        relative = points - c
        distance = np.linalg.norm(relative, axis=1)
        residual = distance - r
        convex = np.sum(normals * relative, axis=1) < -RADIAL_COS * distance
        keep = convex & (np.abs(residual) <= tolerance + slack)
        # tighten to the spread of the sphere's own points: the neck's fillet and a flattened cap drop out
        beyond = np.maximum(np.abs(residual[keep]) - slack[keep], 0.0)
        spread = 1.4826 * float(np.median(beyond)) if keep.any() else tolerance
        tolerance = max(0.5 * float(spacing.min()), 2.5 * spread)
    if keep.sum() < 50:
        return None
    directions = sphere_directions(200)
    relative = points[keep] - c
    hit = np.argmax((relative / np.linalg.norm(relative, axis=1, keepdims=True)) @ directions.T, axis=1)
    return centre + c / spacing, r, float(np.unique(hit).size) / len(directions)


def joint_space(mask: np.ndarray, centre: np.ndarray, radius: float, spacing: np.ndarray) -> float:
    """The split radius (mm): the middle of the joint space on the bone occupancy of spherical shells.

    Shells run from ``radius`` (the head's surface) to 1.25 times it. The joint space is the run
    of shells around the emptiest one whose occupancy stays within 30 % of the way from that
    minimum to the head's own occupancy (shells just inside ``radius``). When the occupancy
    never drops below half (socket and head merged in the mask) the split is the head's surface.
    """
    step = 0.25 * float(spacing.min())
    box = ball_box(mask.shape, centre, 1.3 * radius, spacing)
    distance = box_distances(box, centre, spacing)
    bone = mask[box].ravel().astype(float)
    edges = np.arange(0.85 * radius, 1.25 * radius + step, step)
    shell = np.digitize(distance.ravel(), edges)
    counts = np.bincount(shell, weights=bone, minlength=len(edges) + 1)[1:len(edges)]
    totals = np.bincount(shell, minlength=len(edges) + 1)[1:len(edges)]
    occupancy = counts / np.maximum(totals, 1)
    mids = (edges[:-1] + edges[1:]) / 2
    inside, outside = mids < radius - 1.0, mids >= radius
    if not inside.any() or not outside.any():
        return radius
    full = float(occupancy[inside].mean())
    empty_at = np.flatnonzero(outside)[np.argmin(occupancy[outside])]
    empty = float(occupancy[empty_at])
    if empty > 0.5 or full - empty < 0.2:
        return radius
    gap = outside & (occupancy <= empty + 0.3 * (full - empty))
    start = stop = empty_at
    while start - 1 >= 0 and gap[start - 1]:
        start -= 1
    while stop + 1 < len(gap) and gap[stop + 1]:
        stop += 1
    return float(max(radius, (edges[start] + edges[stop + 1]) / 2))


def _lateral(side: str) -> float:
    return -1.0 if side == "right" else 1.0  # patient right is at low columns


def split_sides(mask: np.ndarray, spheres: list[FemoralHead], spacing: np.ndarray,
                hu: np.ndarray | None = None, *, centre_col: float | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{side: (femoral head mask, acetabulum mask)}`` for each sphere (full-size boolean arrays).

    With ``hu`` (the CT on the same grid), voxels of a joint space the bone mask closed are
    found on the image and kept out of the connectivity (:func:`joint_gap`). An acetabulum
    stays on its own side of the midline (between the two heads when both are found, else
    ``centre_col``): at coarse pixels the closed symphysis, sacroiliac and hip joints make the
    whole pelvic ring, and even the other femur, one component."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if not spheres:
        return out
    margin = CONTACT_MM + 10.0
    z_lo = max(0, int(np.floor(min(s.centre[0] - (s.split + margin) / spacing[0] for s in spheres))))
    z_hi = min(mask.shape[0], int(np.ceil(max(s.centre[0] + (s.split + margin) / spacing[0] for s in spheres))) + 1)
    crop = mask[z_lo:z_hi]
    offset = np.array([z_lo, 0, 0])
    gaps = np.zeros(crop.shape, bool)
    if hu is not None:
        for sphere in spheres:
            box, gap = joint_gap(crop, hu[z_lo:z_hi], sphere.centre - offset, sphere.radius, spacing)
            gaps[box] |= gap
    parts = _components(crop, spheres, spacing, offset, gaps)
    labelled = parts["labels"]
    if len(spheres) == 2:
        centre_col = float(np.mean([s.centre[2] for s in spheres]))
    columns = np.arange(mask.shape[2])
    owners = _cut_bridges(labelled, parts, spheres, spacing, offset)
    for sphere in spheres:
        femur, pelvis = owners[sphere.side]
        head, acetabulum = _side_masks(crop, labelled, sphere, spacing, offset, femur, pelvis)
        if centre_col is not None:
            acetabulum &= (_lateral(sphere.side) * (columns - centre_col) > 0)[None, None, :]
            acetabulum &= ~_sacral_corridor(acetabulum.shape, spheres, sphere, centre_col, spacing)
        full_head, full_ace = np.zeros(mask.shape, bool), np.zeros(mask.shape, bool)
        full_head[z_lo:z_hi], full_ace[z_lo:z_hi] = head, acetabulum
        out[sphere.side] = (full_head, full_ace)
    return out


def _sacral_corridor(shape, spheres: list[FemoralHead], sphere: FemoralHead, centre_col: float,
                     spacing: np.ndarray) -> np.ndarray:
    """The sacrum and coccyx at the level of the hips: on the midline (within
    :data:`SACRUM_HALF_WIDTH` of the half distance between the heads) and behind the heads (by more
    than :data:`SACRUM_BEHIND` of it). At coarse pixels the closed sacroiliac joints join them to the
    pelvis; no acetabulum reaches there (on the hip-ct phantoms the acetabulum stays within 47 mm
    behind the head centres and, that far back, 29 mm or more from the midline, at a half distance
    of 85 mm)."""
    half = float(np.mean([abs(s.centre[2] - centre_col) for s in spheres])) * float(spacing[2])
    rows = (np.arange(shape[1]) - float(np.mean([s.centre[1] for s in spheres]))) * float(spacing[1])
    cols = np.abs(np.arange(shape[2]) - centre_col) * float(spacing[2])
    corridor = (rows[:, None] > SACRUM_BEHIND * half) & (cols[None, :] < SACRUM_HALF_WIDTH * half)
    return np.broadcast_to(corridor[None], shape)


def _cut_bridges(labelled: np.ndarray, parts: dict, spheres: list[FemoralHead], spacing: np.ndarray,
                 offset: np.ndarray) -> dict[str, tuple[int, int]]:
    """``{side: (femur label, pelvis label)}`` after cutting every component that holds both a
    femur and a pelvis (bridged across a joint space) by a watershed of its distance transform:
    one basin per side's femoral contacts and one for all socket contacts in it, so two bridged
    hips and the pelvic ring between them (one component at coarse pixels) are cut together."""
    from skimage.segmentation import watershed

    owners = {s.side: parts[s.side][:2] for s in spheres}
    bridged = {femur for femur, pelvis in owners.values() if femur and femur == pelvis}
    for value in sorted(bridged):
        groups = {}  # marker number -> contact points in this component
        for s in spheres:
            femur, pelvis, (femoral_points, socket_points) = parts[s.side]
            if femur == value:
                groups[("femur", s.side)] = femoral_points
            if pelvis == value:
                groups[("pelvis",)] = np.concatenate([groups.get(("pelvis",), np.zeros((0, 3), int)), socket_points])
        groups = {key: points[labelled[tuple(points.T)] == value] for key, points in groups.items()}
        if ("pelvis",) not in groups or not all(len(points) for points in groups.values()):
            continue
        box = ndimage.find_objects((labelled == value).astype(np.uint8))[0]
        component = labelled[box] == value
        origin = np.array([b.start for b in box])
        markers = np.zeros(component.shape, np.int32)
        for mark, points in enumerate(groups.values(), start=1):
            local = points - origin
            markers[local[:, 0], local[:, 1], local[:, 2]] = mark
        basins = watershed(-ndimage.distance_transform_edt(component, sampling=spacing), markers, mask=component)
        _socket_side_to_pelvis(basins, groups, spheres, origin + offset, spacing)
        new = {}
        for mark, key in enumerate(groups, start=1):
            new[key] = int(labelled.max()) + 1
            labelled[box][basins == mark] = new[key]
        for s in spheres:
            femur, pelvis = owners[s.side]
            owners[s.side] = (new.get(("femur", s.side), femur) if femur == value else femur,
                              new[("pelvis",)] if pelvis == value else pelvis)
    return owners


def _socket_side_to_pelvis(basins: np.ndarray, groups: dict, spheres: list[FemoralHead], origin: np.ndarray,
                           spacing: np.ndarray) -> None:
    """Give the pelvis what a femur's basin took above-medially of its head (within
    :data:`FEMUR_REACH` head radii): the femur leaves the head through its neck, below-laterally, so a
    wide bridge across a narrowed joint space must not carry the acetabulum into the femur."""
    keys = list(groups)
    pelvis = keys.index(("pelvis",)) + 1
    for mark, key in enumerate(keys, start=1):
        if key[0] != "femur":
            continue
        sphere = next(s for s in spheres if s.side == key[1])
        where = np.argwhere(basins == mark)
        points = (where + origin - sphere.centre) * spacing
        distance = np.linalg.norm(points, axis=1)
        femoral = np.array([-1.0, 0.0, _lateral(sphere.side)]) / np.sqrt(2.0)
        above_medial = (points @ femoral < 0) & (distance > sphere.split) & (distance <= FEMUR_REACH * sphere.radius)
        basins[tuple(where[above_medial].T)] = pelvis


def joint_gap(crop, hu, centre, radius, spacing, *, reach_mm: float = 6.0, window_mm: float = 3.0):
    """``(box, gap)``: bone-mask voxels just outside the head (up to ``reach_mm``) darker than the
    half maximum of a clear local edge (contrast over 30 % of the local maximum): a joint space
    that partial volume closed in the mask, which the image still shows."""
    box = ball_box(crop.shape, centre, radius + reach_mm + window_mm, spacing)
    distance = box_distances(box, centre, spacing)
    image = hu[box]
    size = morphology.window_voxels(window_mm, spacing, minimum=1)
    high, low = ndimage.maximum_filter(image, size=size), ndimage.minimum_filter(image, size=size)
    edge = (high - low) > 0.3 * np.maximum(high, 1.0)
    shell = (distance > radius - 0.5) & (distance <= radius + reach_mm)
    return box, crop[box] & shell & edge & (image < (high + low) / 2)


def open_joint(mask: np.ndarray, hu: np.ndarray, centre: np.ndarray, radius: float, spacing: np.ndarray) -> np.ndarray:
    """``mask`` without the joint space around one femoral head that partial volume closed in it:
    the voxels of :func:`joint_gap` connected (face neighbours) to the head's surface (within a
    pixel of ``radius``). Darker voxels behind the socket's subchondral plate (its cancellous
    interior) are cut off from the head by the plate and stay. On the demo's 1.4 mm phantoms the
    bone mask fills 0.4-0.9 mm of the joint space on some sides: the head sphere fitted to it is
    that much too large (the acetabulum's slab a slice too tall) and the filled joint space is
    labelled acetabulum."""
    box, gap = joint_gap(mask, hu, centre, radius, spacing)
    if not gap.any():
        return mask
    labels, count = ndimage.label(gap, structure=ndimage.generate_binary_structure(3, 1))
    distance = box_distances(box, centre, spacing)
    touching = np.zeros(count + 1, bool)
    touching[np.unique(labels[distance <= radius + float(spacing[1:].max())])] = True
    touching[0] = False
    out = mask.copy()
    out[box] &= ~touching[labels]
    return out


def _components(crop, spheres, spacing, offset, gaps):
    """Label the bone outside the balls; per side the femur and pelvis component numbers and the
    contact voxels (crop index) on the femoral and on the socket side of the ball. ``gaps`` are
    left out of the connectivity, then given the label of the nearest labelled bone."""
    outside = crop.copy()
    for s in spheres:
        box = ball_box(crop.shape, s.centre - offset, s.split, spacing)
        outside[box] &= box_distances(box, s.centre - offset, spacing) > s.split
    labelled, count = ndimage.label(outside & ~gaps, structure=np.ones((3, 3, 3), bool))
    if gaps.any() and count:
        box = ndimage.find_objects(gaps.astype(np.uint8))[0]
        box = tuple(slice(max(0, b.start - 3), b.stop + 3) for b in box)
        local = labelled[box]
        nearest = ndimage.distance_transform_edt(local == 0, sampling=spacing, return_distances=False, return_indices=True)
        missing = outside[box] & gaps[box]
        local[missing] = local[tuple(nearest)][missing]
    result = {"labels": labelled}
    for s in spheres:
        centre = s.centre - offset
        reach = s.split + CONTACT_MM
        box = ball_box(crop.shape, centre, reach, spacing)
        distance = box_distances(box, centre, spacing)
        local = labelled[box]
        contact = (local > 0) & (distance <= reach)
        values = local[contact]
        empty = np.zeros((0, 3), int)
        if values.size == 0:
            result[s.side] = (0, 0, (empty, empty))
            continue
        index = np.argwhere(contact) + np.array([b.start for b in box])
        points = (index - centre) * spacing
        units = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-6)
        femoral = np.array([-1.0, 0.0, _lateral(s.side)]) / np.sqrt(2.0)  # the neck leaves below-laterally
        along = units @ femoral
        femoral_side, socket_side = along > 0.5, along < -0.3
        # the femur holds most contact below-laterally, the pelvis most above-medially (the same
        # component for both: bridged)
        femur_votes = np.bincount(values[femoral_side], minlength=count + 1)
        pelvis_votes = np.bincount(values[socket_side], minlength=count + 1)
        femur = int(np.argmax(femur_votes)) if femur_votes.max() > 0 else 0
        pelvis = int(np.argmax(pelvis_votes)) if pelvis_votes.max() > 0 else 0
        result[s.side] = (femur, pelvis, (index[femoral_side], index[socket_side]))
    return result


def _side_masks(crop, labelled, sphere, spacing, offset, femur, pelvis):
    """Femoral head and acetabulum of one side on the crop."""
    centre = sphere.centre - offset
    box = ball_box(crop.shape, centre, sphere.split + CONTACT_MM + 1.0, spacing)
    distance = box_distances(box, centre, spacing)
    bone = crop[box]
    local = labelled[box]
    femur_local = local == femur if femur else np.zeros_like(bone)
    # the head is the bone within its own surface (a voxel's tolerance); the shell out to the split
    # radius holds only joint space, or socket where the joint space narrows
    inner = sphere.radius + 0.5 * float(spacing.max())
    head_local = bone & (distance <= min(sphere.split, inner))
    if femur:
        # the head-neck plane, across the neck axis (the direction of the femur's contact with the
        # ball) where a neck of NECK_RATIO head radii meets the head sphere
        contact = femur_local & (distance <= sphere.split + CONTACT_MM)
        points = (np.argwhere(contact) + np.array([b.start for b in box]) - centre) * spacing
        if len(points) >= 10:
            axis = points.mean(axis=0)
            axis /= np.linalg.norm(axis)
            plane = sphere.radius * np.sqrt(1.0 - NECK_RATIO ** 2)
            offsets = [(np.arange(b.start, b.stop) - c) * d for b, c, d in zip(box, centre, spacing)]
            projection = (offsets[0][:, None, None] * axis[0] + offsets[1][None, :, None] * axis[1]
                          + offsets[2][None, None, :] * axis[2])
            head_local &= projection <= plane
    head_local = ndimage.binary_fill_holes(head_local) & (distance <= min(sphere.split, inner))
    head = np.zeros(crop.shape, bool)
    head[box] = head_local
    acetabulum = np.zeros(crop.shape, bool)
    if pelvis:
        z = (np.arange(crop.shape[0]) + offset[0] - sphere.centre[0]) * spacing[0]
        slab = np.abs(z) <= sphere.radius
        acetabulum = (labelled == pelvis) & slab[:, None, None] & ~head
        shell = bone & ~head_local & (distance > inner) & (distance <= sphere.split)
        pelvis_local = local == pelvis
        if shell.any() and pelvis_local.any():
            to_pelvis = ndimage.distance_transform_edt(~pelvis_local, sampling=spacing)
            to_femur = ndimage.distance_transform_edt(~femur_local, sampling=spacing) if femur_local.any() else np.inf
            acetabulum[box] |= shell & (to_pelvis < to_femur) & slab[box[0]][:, None, None]
    return head, acetabulum
