"""Face detection for images without geometry: a rotated tile pyramid, merging, an upright re-check.

mediapipe's short-range BlazeFace model sees 128x128 pixels. Measured here on pasted real faces
it *proposes* faces spanning 12-40 % of its input at any roll (10-12 of 12 pasted faces at every
roll 0-180°, 16-48 px in a 128 px tile), but its eye points assume an upright face. So the image is
resized to a pyramid of scales (the finest puts a ``min_face_size`` face at 15 % of a tile) and
each level is seen once, upright: in 640 px windows (the model is convolutional; one LiteRT call
each, ``blazeface.detect_windows``) or, without LiteRT, in overlapping 128 px tiles; only the two
whole-image levels are seen at 0/90/180/270°. Duplicates are merged and every proposal is
re-checked on an upright, padded crop seen at its four quarter turns: the best turn gives the
orientation and the score.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from bump_backend.faces import align, blazeface, mtcnn, runtime, transform, yunet
from bump_backend.faces.align import warp

TILE = 128
RATIO_MIN = 0.15  # min_face side / tile side at the finest level (0.12 lost 32 px faces at ±90-180°: docs/faces.md)
OVERLAP = 0.4  # of a tile: a face up to 0.3 of a tile (the next level takes over) lies wholly inside one
RECHECK_RATIO = 0.35  # face side / crop side on the upright re-check (the model's best range)
FLAT_STD = 2.0  # grey-level std below which a tile cannot hold a face
MAX_UPSCALE = 1.5
BIN_TRUST = 50.0  # degrees a detection's eye line may differ from its tile's turn
PICK_ABOVE_FLOOR = True  # _choose_turn: only turns the caller keeps contend (a switch for benchmarks)
RECHECK_THRESHOLD = 0.3
RECHECK_WIDEST = 2.0  # the largest re-check reading, in sides of a candidate, that stands for it (but: SMALL_WIDEST)
# The full-range model's crops (never upscaled) are sampled bilinearly, as mediapipe's graphs resize their inputs:
# bicubic (align.warp's default) took 0.72 against 0.18 ms a 192 px crop, ~40 crops per 1440x1440 still. The
# short-range re-check crops stay bicubic: they upscale faces under ~45 px, and bilinear ones lost two 24 px tune faces.
FULL_RANGE_INTERPOLATION = cv2.INTER_LINEAR
TURN_AMBIGUITY = 0.2  # re-check turns scoring within this of the best are told apart by the full-range model
SECOND_TRIES = (0.0, -8.0, 8.0)  # roll offsets of the full-range crop: its score flips 0 <-> 0.6 within 1°
SECOND_ENOUGH = 0.5  # a full-range score that ends the tries
# Pyramid levels larger than a tile are seen in windows of up to WINDOW px (one LiteRT call each; the
# model is convolutional) instead of 128 px tiles at 40 % overlap, which saw each pixel ~2.8 times.
WINDOWS = True  # a switch for benchmarks; off without LiteRT
WINDOW = 640  # window side, level pixels (per pixel, a 640 px input costs ~1.5x a 128 px one: cache)
WINDOW_OVERLAP = TILE  # level pixels: any 128 px tile lies wholly inside a window (a face keeps a tile's context)
# The finest level only holds faces of up to 0.3 of a tile (~38 level px; coarser levels take larger ones), so its
# windows need only overlap by FINE_OVERLAP for such a face to lie wholly inside one: a 1440x1440 still's four
# 640 px windows become 608 px ones (-10 % of the finest level's pixels, which are ~70 % of the pyramid's). A new
# window shape costs an interpreter per thread (~60 MB; rebuilt when the per-thread cap lets it go): a 1280x720
# still's two 576x576 windows would become 544x576 (-6 %), and alternating 1440x1440 / 1280x720 stills then built
# 19 instead of 11 interpreters per 6 stills, which cost more than the pixels saved. So the tighter overlap is used
# only where it saves at least FINE_MIN_SAVING of the level's window pixels.
FINE_OVERLAP = 64
FINE_MIN_SAVING = 0.08
TIGHT_FINEST = True  # the finest level's windows overlap by FINE_OVERLAP (False: WINDOW_OVERLAP; a switch for benchmarks)
TIGHT_WINDOWS = True  # windows only as large as the overlap needs (window_layout; False: 640 px; a switch for benchmarks)
BALANCED = True  # run_parallel: chunks by cost / one task per item (False: every workers-th item; a switch for benchmarks)
# Issue 17's twenty-third pass: work that waits on nothing is started before the pool would idle (a switch for
# benchmarks; the same faces either way). P-Net's small faces need only the image, so they are queued behind the
# windows: the worker that ends its windows first takes them (the windows' chunks ended up to ~15 ms apart, one core
# idle). The second look where a cluster's re-check saw nothing needs only those re-checks, so it runs on the pool
# beside the weak proposals' re-checks (it ran alone on the calling thread, ~10-25 ms of R-Net and O-Net a still with
# both workers idle). Refinement starts with the candidates likeliest to be refused (finder.refine): a refused one
# goes through every retry (17-32 thread ms against ~5 for one kept), and started last it left one core idle.
OVERLAPPED = True
# Issue 17's twenty-fourth pass: the second look's re-checks (the weak proposals', then those where a cluster's re-check
# saw nothing) are queued as soon as their candidates are known, behind the re-checks already queued, instead of after
# the last of those is done: each such wait left one worker idle for the other's last re-check (a switch for
# benchmarks; the same faces either way, the results gathered in the same order).
STREAMED = True
# A re-checked proposal whose best short-range score is under the mesh-vouched 0.75 and whose contending turns the
# full-range model sees at no roll try is dropped unless the mesh fits it (Candidate.unseen; finder): without a fit
# its crop for the second opinion is the one just asked, so the three more full-range calls it cost before could
# only say no again. Dropping such proposals before the mesh saved ~55 CPU ms more per 1440x1440 still but lost a
# 32 px face at 71° on tune seed 2017 (best turns 0/180°, seen only once the mesh turned the crop to 72°); asking
# them only at the face's roll lost a 48 px face at -93° on seed 1017 (seen at 0.63 only 8° off).
DROP_UNSEEN = True  # a switch for benchmarks
UNSEEN_DROP_BELOW = 0.75
ROUND_ROBIN_TRIES = True  # the re-check's full-range roll tries go round its contenders (_opinions; a switch for benchmarks)
OPPOSITE_TURNS_DECIDE = True  # re-check: no face at 0° and 180° means no face (recheck_turns; a switch for benchmarks)
# A re-check whose best turn scores under the caller's floor is dropped whatever the full-range model says, so it is
# not asked (its 1-9 calls per proposal went mostly to clutter; a switch for benchmarks).
OPINIONS_ABOVE_FLOOR = True
BOUNDED_OPINIONS = True  # _opinions skips a contender no opinion could lift past the best one (a switch for benchmarks)
# A cluster whose crop reads under the floor is re-checked at its smallest member's size when that member is under
# SMALLER_MEMBER_RATIO of the cluster's best proposal (confirm; a switch for benchmarks).
SMALLER_MEMBER = True
SMALLER_MEMBER_RATIO = 0.75
# Issue 17's forty-third pass: a blurred face is often proposed under its size (on the crowd tune part a 32 px face
# at -50° by a 29 px box), and the re-check then reads nothing on the crop cut for that size; cut for a face
# LARGER_RETRY_GROW times larger it reads the face (0.67 there). So a candidate of at most LARGER_RETRY_MAX_SIDE whose
# re-check read under the floor is re-checked once more at that size, where its square is soft (``sharpness`` under
# LARGER_RETRY_SOFT: blurred heads pasted on clutter read 17-24, sharp ones 36-50, clutter mostly 37-106), and the
# reading stands only where it reaches the floor. Without the sharpness bar the retry cost up to 8 % more CPU, and its
# readings pushed out the weaker ones that had kept two turned profiles (docs/faces.md).
LARGER_RETRY = True
LARGER_RETRY_MAX_SIDE = 48.0
LARGER_RETRY_GROW = 1.3
LARGER_RETRY_SOFT = 30.0
# Issue 17's forty-fourth pass: where the retry's reading stands, what it pushed out goes with it as a fallback
# (Candidate.fallbacks), tried where refinement refuses the retry's reading: the re-check's own reading under the floor
# (UNDER_FLOOR), or for one of P-Net's small faces the re-check read nothing on, its hand-on under the floor
# (SMALL_UNSEEN). Without it the retry lost two faces the search found without the retry: a 24 px LFW face at -60°,
# blurred (the small-face tests' case), whose hand-on it blocked, and a 24 px profile at 81° (turned tune part), whose
# under-floor reading it replaced by one 1.6x the face. A switch for benchmarks.
LARGER_RETRY_YIELDS = True
# Issue 17's eighth pass (docs/faces.md): window proposals from RESCUE_FROM up to the proposal threshold that lie near
# no stronger one get a second look where MTCNN's weights are installed (mtcnn.available): kept, turned to R-Net's best
# quarter turn, when R-Net scores them at least RESCUE_R at one of the four and O-Net at least RESCUE_O at that one
# (rescued; a switch for benchmarks).
RESCUE = True
RESCUE_FROM = 0.3
# ... of at most RESCUE_MAX_SIDE px: the faces they are for are 24-64 px, but a turned face's weak box can be ~1.7x its
# size (an 82 px proposal for a 48 px face at -86°, second tune part), and a third of the weak proposals are larger
# still (clutter at the coarse levels), which R-Net need not see.
RESCUE_MAX_SIDE = 96.0
# Issue 17's forty-first pass: a weak proposal over RESCUE_MAX_SIDE gets the second look through its best member within
# it (``_rescue_sized``). On the crowd tune part a 64 px face at 168° was proposed at 0.39 by a 59 px window box, merged
# under a 112 px one at 0.43 beside it, and never re-checked; on a crop of the face alone it was proposed at 0.62. A
# switch for benchmarks.
RESCUE_MEMBERS = True
RESCUE_R = 0.5
RESCUE_O = 0.5
# Window proposals from RESCUE_FAINT up to RESCUE_FROM, decoded apart from the weak ones (so those stay what they were)
# and near no weak or strong one, get the same second look (None: none).
RESCUE_FAINT: float | None = 0.2
# Issue 17's sixteenth pass: a cluster more than RESCUE_BLOCK_RATIO times a weak proposal's side is not its place's
# proposal, so it does not keep the proposal from the second look. Before it (RESCUE_BLOCK_RATIO None) a 334 px clutter
# cluster kept a 32 px face's weak proposal 118 px from its centre from R-Net and O-Net, which read it 0.99 and 1.0.
RESCUE_BLOCK_RATIO: float | None = 2.0
# Issue 17's twenty-first pass: a cluster whose re-check saw no face no longer keeps the weak proposals near it from the
# second look: they get it after the clusters' re-check (a switch for benchmarks). Before, a 72 px clutter cluster the
# re-check found empty kept a 38 px weak proposal on a 32 px face from R-Net and O-Net, which read it 0.99 and 1.0.
RESCUE_WHERE_UNSEEN = True
# Issue 17's twenty-second pass: a re-check reading from UNDER_FLOOR_FROM up to the floor is not dropped but handed on
# marked ``under_floor`` (with the second look), and refinement keeps it only where YuNet and one of the full-range and
# back-camera BlazeFace models see the face too (finder.UNDER_FLOOR). Turned heads read so: a 96 px profile at 10° read
# 0.597 on the re-check, YuNet 0.84, the full-range model 0.68. On three turned-head tune runs 9 of the 33 missed faces
# near such a reading had YuNet >= 0.8 and one of the other two >= 0.5; of the 2300 clutter readings there (1700 on 600
# face-free images) none did, YuNet reaching 0.74. A switch for benchmarks.
# Only readings of at most UNDER_FLOOR_MAX_SIDE (the second look's bound): the faces the rule found were 29-98 px
# squares, while 4 of the 6 clutter readings that YuNet read >= 0.6 and one of the others >= 0.5 were 177-295 px, and
# a 282 px spoon's reflection on a face-free image of the benchmark passed (short-range 0.55, full-range 0.58, YuNet
# 0.85). Large faces read well over the floor.
UNDER_FLOOR = True
UNDER_FLOOR_FROM = 0.5
UNDER_FLOOR_MAX_SIDE = RESCUE_MAX_SIDE
# Issue 17's thirty-first pass: P-Net's small faces (``small_faces``, O-Net >= SMALL_O) that the short-range re-check
# reads no face on are handed on too, marked ``under_floor`` with O-Net's reading for a score, where no reading stands
# (finder.UNDER_FLOOR then asks YuNet and the full-range or back-camera model). Most 24 px faces of dark skin blurred or
# JPEG-damaged are lost there: at their true squares the short-range model read >= 0.5 on 5 of 14 such misses (small
# tune part), YuNet on 14 and the full-range model on 12. Not searched by roll there (finder.ROLL_SEARCH_UNDER_FLOOR):
# YuNet's best of eight rolls kept clutter. SMALL_UNSEEN_O: O-Net's bar for them (= SMALL_O, the bar they passed).
SMALL_UNSEEN = True
SMALL_UNSEEN_O = 0.8
# The same pass: a small square O-Net refuses at R-Net's turn is read at the two quarter turns beside it too
# (``o_net_rolls``; R-Net's pick was 90° off on 3 of the small tune part's 14 misses: 24 px faces at 66-118°), where it
# must reach ONET_EYE_BAR: at ONET_RETRY_BAR a 34 px clutter patch of the large part read 0.87 there and went on to be
# kept (by finder.SIDE_ON_SEARCH).
ONET_RETRY_QUARTERS = True
# Issue 17's fifteenth pass: of the 24-32 px faces the search missed on two tune parts, MTCNN's P-Net at half scale
# (its 12 px window a 24 px face) proposes most, near a strong cluster whose re-check lost them or where no window
# proposed anything. At 12 px P-Net hardly tells the turns apart (a face at any roll read 0.97-1.0 at every turn), so it
# reads the image at SMALL_SCALE once, upright (SMALL_TURNS; four turns found 1-3 faces more per 60 scenes for 1.2-1.3x
# the CPU); its peaks (SMALL_PEAK) of at least SMALL_P are read by R-Net at their four quarter turns (>= SMALL_R at the
# best), then O-Net at that turn (>= SMALL_O), and those where no re-check has seen a face go through the re-check
# as the second look's do (small_faces; a switch for benchmarks).
# Issue 17's twentieth pass: P-Net reads the image upside down too (SMALL_TURNS, quarter turns of np.rot90). Its peaks
# are not the same there: on the tune parts of seeds 17 and 1017 (in-process, 60 scenes a part) it proposed 6 faces of
# 24 px more, 5 of them at rolls of 137-180°, none lost and no false positive more on 100 face-free images, for
# 1.04-1.09x the CPU; all four turns found 1 more of seed 17's (1.15-1.18x, one false positive more).
SMALL_FACES = True
SMALL_SCALE = 0.5
SMALL_TURNS = (0, 2)
SMALL_PEAK = 5  # a peak is the highest of SMALL_PEAK x SMALL_PEAK cells (2 level px apart)
SMALL_P = 0.9
SMALL_R = 0.5
SMALL_O = 0.8
# Issue 17's twenty-sixth pass: 24 px faces rolled 74-92° were not proposed: P-Net read them 0.96-1.0 at the quarter
# turns it does not read (SMALL_TURNS; all four cost 1.11-1.13x the CPU) and 0.80-0.87 at best at those it does. A peak
# of the turns read from SMALL_STIR up to SMALL_P, with no peak of SMALL_P near it, is read at the other quarter turns
# on a SMALL_STIR_CROP px crop of the level around it (stirred_peaks; ~70-130 places a still, ~3 ms against ~21 for one
# more whole turn; cells at even offsets are the whole level's), and its best cell there reaching SMALL_P is a peak too
# (None: off, a switch for benchmarks). From 0.5 up it found no face more on the tune parts, for 1.01-1.16x the CPU.
# Issue 17's thirty-third pass: 0.5 (was 0.7). The parts made since (small tune, real tune) have many more 24 px faces,
# and their misses are mostly dark-skinned or grey faces at 70-140° that no window and no P-Net turn proposed: YuNet,
# O-Net and the full-range model read most of them at their true square. At 0.5, in-process on small tune (seeds
# 17-3017, 120 scenes) 654 against 650 of 713 faces were found, on real tune (seeds 17 and 1017) 3 more of 24 px and
# 1 of 32 px; tune, second tune and group tune the same, and no false positive more there or on 300 face-free images.
# Its cost on the benchmark: 1.00-1.05x the CPU of 0.7 (1.03x on the median part, 1.03-1.04x on face-free images);
# 0.4 (on seeds 2017 and 3017) and 0.3 found 2 and 4 faces more on small tune and 3 on real tune, for about two and
# three times that.
SMALL_STIR: float | None = 0.5
SMALL_STIR_CROP = 24
# Issue 17's forty-fifth pass: of the 18 faces of 24 px small tune still missed (seeds 17 and 1017), 17 dark-skinned
# and 16 with no candidate near them, P-Net read 10 at 0.9 at some quarter turn but only 4 at the turns it reads:
# sideways faces read 0.9 and more a quarter turn on and 0.4-0.5 at those turns, so nothing stirred them. A peak from
# SMALL_FAINT up to SMALL_STIR, with no peak of SMALL_STIR or more near it, is stirred too, and what it stirs goes on
# only where O-Net reads it SMALL_FAINT_O or more (SMALL_O for the others): such peaks are ~130-150 a still, nearly all
# clutter, and the higher bar keeps the re-checks they add few. In-process on small tune (seeds 17-3017, 120 scenes)
# 676 against 673 of 713 faces, no false positive more, at 0.99-1.02x the CPU; from 0.3 up with O-Net's usual bar, on
# seeds 17 and 1017 one face more than that, at 1.03x (None: off, a switch for benchmarks).
SMALL_FAINT: float | None = 0.4
SMALL_FAINT_O = 0.95
# Issue 17's forty-sixth pass: a 24 px face rolled about 45° off every quarter turn gives P-Net's turns a stirring peak
# at most (SMALL_STIR up to SMALL_P), the stir's quarter turns do not see it either, and R-Net and O-Net read its place
# at quarter turns and their retries, 45° off it. P-Net reads it SMALL_P or more at the eighth turn that sees it: of 35
# traced 24 px misses (crowd tune and small tune), 9 so with R-Net and O-Net reading 0.8 there. A stirring peak no
# stirred square explains is read on a SMALL_STIR_CROP px crop of the level turned to each of DIAGONALS
# (``diagonal_peaks``: one turned level, the crops' np.rot90 for the others); its best cell reaching SMALL_P is a square
# at that roll, read by R-Net there (SMALL_DIAGONAL_R; not at its quarter-turn pick), then by O-Net with its retries
# (SMALL_DIAGONAL_O), and it stands only where no other P-Net square does, so what the others give is as before. Such
# squares are marked (``Candidate.eighth``): P-Net reads clutter at 0.9 at some eighth turn far more often, and a face
# refined from one is kept only where the mesh fits it or the short-range model is sure of it
# (finder.EIGHTH_NEEDS_SURE).
# In-process (30 scenes a seed): real tune (seeds 17 and 1017) 107 against 97 of 186 faces of 24 px and 130 against 128
# of 162 of 32 px, every one mesh-fitted; crowd tune (1017) and turned tune (17) one face of 24 px more each; small tune
# (1017) and tune (17) the same; on 150 face-free images one false positive more (a 30 px square O-Net read 0.99 at
# -132°, kept by O-Net's word beside it, no mesh fit: what the mark drops). CPU 1.03-1.09x; reading only the two eighth
# turns beside a peak's own turn: 75 against 86 of 144 tilted LFW faces proposed (42 without), for ~60 % of the cost.
# O-Net's usual bar (0.8): one face more on real tune, 1.05-1.11x. (False: off, a switch for benchmarks.)
SMALL_DIAGONAL = True
SMALL_DIAGONAL_O = 0.95
SMALL_DIAGONAL_R = 0.8
DIAGONALS = (45.0, 135.0, -135.0, -45.0)  # the order of np.rot90's turns from the first (diagonal_peaks)
# Issue 17's thirty-eighth pass: a peak under SMALL_P is only stirred (read at the turns P-Net skips), which does not
# help a face at a turn P-Net reads. Small tune seed 17: in scene 43 a 24 px face at 178° peaked at 0.88, 3 px off, at
# its own turn, and R-Net and O-Net read it 1.0 there; in scene 38 the peak of 1.0 on a face at -10° lay 7 px off (R-Net
# 0.78 half a turn round, O-Net 0.1) and a peak of 0.89 lay 4 px off (R-Net 0.98 upright). A peak from SMALL_NEAR_P up
# to SMALL_P is read by R-Net at the four quarter turns too, and one it reads SMALL_NEAR_R or more at one of them goes
# on to O-Net turned to it, as a peak of SMALL_P does (``r_net_turned``; None: not, a switch for benchmarks). Its small
# face stands only where no other P-Net square's does; it is marked ``near_peak`` (so is the re-check's reading of
# it), and its face yields to any other at its place (finder.NEAR_YIELDS): where other faces stand, the search finds
# what it found before. Both were added for a held-out loss (the turned part's scene 44, docs/faces.md). About 35 such
# peaks a still; R-Net read none of them 0.9 on 8 face-free and 8 small tune stills (at 0.8-0.9, 0.5 a still on small
# tune, none on face-free ones). In-process on small tune seed 17 (60 scenes) 321 against 319 of 344 at 0.85 and at
# 0.8, for 1.01-1.02x and 1.02-1.04x the CPU; seeds 1017 and 3017 (60 scenes), real tune seed 17 and 100 face-free
# images the same faces and false positives.
SMALL_NEAR_P: float | None = 0.85
SMALL_NEAR_R = 0.9
# Issue 17's thirty-fourth pass: P-Net's small faces are re-checked only where no re-check reading stands (a face
# there is read already), and some 24 px faces were lost so:
# - a 216 px clutter reading, refused later, stood 87 px from a 24 px face P-Net and O-Net had proposed: a reading
#   more than SMALL_BLOCK_RATIO times a small face's side does not stand for its place (as RESCUE_BLOCK_RATIO for the
#   second look's proposals; None: any reading does, a switch for benchmarks);
# - the reading that stood there was the face read half a turn off (or 1.5x too large at a quarter turn off), which
#   refinement refused, while O-Net had read the face at 0.93-1.0 near its roll: each small face kept from the re-check
#   goes with the readings that kept it (Candidate.fallbacks), and where such a reading is refused the short-range
#   model reads the small face's square at O-Net's roll and that reading is refined in its place (finder._fallen_back;
#   SMALL_FALLBACK, a switch for benchmarks).
SMALL_BLOCK_RATIO: float | None = 2.0
SMALL_FALLBACK = True
# Issue 17's thirty-sixth pass: O-Net's retries (ONET_SHIFT_STEP) may read a P-Net face on a square 1.25x P-Net's, and
# SMALL_BLOCK_RATIO was then taken of that side: a 49 px reading of a 24 px face (twice its size) stood for a P-Net
# square grown to 30 px and kept it from the re-check, and the face was reported at 55 px (small tune part). The ratio
# is taken of P-Net's own square (Candidate.proposed_side; False: of the candidate's side, a switch for benchmarks).
# Not for a P-Net face the re-check read nothing on (SMALL_UNSEEN), which carries O-Net's word alone: a 24 px P-Net
# square in a 64 px side-on head (turned tune part), grown to 30 px, was then handed on where the head's 56 px reading
# stood, and kept at 34 px in the head's place.
SMALL_BLOCK_OWN = True
# Issue 17's forty-sixth pass: a P-Net face's own re-check can read it over the floor at a roll far from O-Net's
# (90-120° off on three LFW tune faces O-Net read within 11° of theirs), and refinement refuses that reading. Where the
# two rolls lie more than SMALL_OWN_FALLBACK degrees apart and YuNet reads the P-Net square at O-Net's roll
# SMALL_OWN_YUNET (finder.YUNET_VOUCHES), the P-Net face goes with its reading as the blocked ones do (SMALL_FALLBACK)
# and is refined at O-Net's square and roll where the reading is refused (None: not, a switch for benchmarks).
# In-process (30 scenes a seed): crowd tune (1017) one 24 px face more, real tune (17 and 1017) one; small tune
# (1017), turned tune and tune (17), 150 face-free images the same, CPU 0.99-1.04x. Without YuNet's word it kept a 38 px
# clutter patch on crowd tune (seed 17, scene 7), fitted by the mesh and vouched by O-Net: YuNet reads that square 0,
# the faces won 0.87-0.91.
SMALL_OWN_FALLBACK: float | None = 30.0
SMALL_OWN_YUNET = 0.8
# Issue 17's twenty-eighth pass: on scenes of 24 px faces only, the re-check of a P-Net candidate read a face's head
# (or clutter beside it) 1.6-2x the square's side at another turn, and refinement kept two such readings: a face
# reported twice its size at a wrong roll. Of the re-check readings of P-Net's candidates over 1.2x their side none
# was a face's own (10 of 10; 25 of 25 of those up to 1.2x were): a reading stands for a P-Net candidate up to
# SMALL_WIDEST times its side (Candidate.widest; None: RECHECK_WIDEST as for every candidate, a switch for benchmarks).
SMALL_WIDEST: float | None = 1.3
# Issue 17's seventeenth pass: a face 30-45° from every quarter turn is read by R-Net and O-Net at the nearest one, and
# the re-check then cut it that far off upright, where the full-range model (brittle to roll) read nothing. O-Net's five
# landmark points at that turn give its roll (tune faces read at their true square 30-45° off: median error 6°, 22° at
# 24 px): the second look's and P-Net's candidates start from that roll when it lies within LANDMARK_TRUST of the turn
# (a switch for benchmarks).
LANDMARK_ROLL = True
LANDMARK_TRUST = 50.0
# Issue 17's twenty-fifth pass: the second look's and P-Net's 24 px faces the search missed on the tune parts were
# mostly darker-skinned faces that every model read as faces at their true square (re-check 0.68-0.88, YuNet 0.75-0.89)
# but that R-Net and O-Net dropped on the way there:
# - a face rolled ~45° between two quarter turns read under RESCUE_R / SMALL_R at all four (0.38-0.48 at most, 0.84 at
#   -45°): a square whose best quarter turn reads from R_NET_SECOND_FROM up to that bar is read at the turns from the
#   other R_NET_OFFSETS too, where a reading counts from R_NET_BETWEEN up (r_net_turns; (0.0,): the quarter turns only);
# - R-Net's pick was upside down (a face at -132° read 0.84 at 45°, where O-Net read 0.46; 0.82 half a turn on), or
#   P-Net's peak lay a third of the face off its centre (O-Net 0.65 there, 0.96 on R-Net's box-regressed square): a
#   square O-Net refuses at its turn is read half a turn on and at R-Net's box-regressed square, at both turns, and
#   the best that O-Net passes goes on (o_net_rolls; ONET_RETRY, a switch for benchmarks). Those three readings must
#   reach ONET_RETRY_BAR too (the second look's own bar, RESCUE_O, is 0.5): at 0.5 a near-black 34 px patch of a
#   face-free image of the benchmark (seed 23017) passed, read 0.52 half a turn on.
R_NET_OFFSETS: tuple[float, ...] = (0.0, 45.0)
R_NET_SECOND_FROM = 0.1
R_NET_BETWEEN = 0.7
ONET_RETRY = True
ONET_RETRY_BAR = 0.8
# Issue 17's twenty-eighth pass: R-Net picks a 24 px face's roll on a 45° grid, and O-Net then read darker-skinned
# faces 15-45° off it at 0.33-0.73 (1.0 at their roll): a square O-Net refuses at its turn, read from ONET_EYE_FROM up,
# is read once more at the roll its own eye points give there (within LANDMARK_TRUST of the turn), one of o_net_rolls'
# tries, which must reach ONET_EYE_BAR (ONET_EYE_RETRY, a switch for benchmarks). At ONET_RETRY_BAR a dark clutter blob
# of a tune scene read 0.88 there and went on to be kept; the faces won read 0.92-1.0.
ONET_EYE_RETRY = True
ONET_EYE_FROM = 0.3
ONET_EYE_BAR = 0.9
# Issue 17's thirty-fifth pass: O-Net read 11 of 12 traced 24 px faces it refused at 0.87-1.0 within a few pixels or a
# quarter of a side of the square it was given (P-Net's cells lie 4 px apart; 6 read best at 1.25x the side): a
# square it refuses, read from ONET_SHIFT_FROM up, is read again ONET_SHIFT_STEP x its side off in the 8 directions and
# at each of ONET_SHIFT_SCALES x its side (``shifted_squares``), at ONET_EYE_BAR (None: not). R-Net reads all of those
# (~1/4 of O-Net's cost a crop) and O-Net only the ONET_SHIFT_KEEP it reads best (None: all). Small tune parts (4 seeds):
# 24 px faces 671 against 662 of 713 with O-Net reading all 17 (1.04-1.09x the CPU), 669 with the best 4 (1.03-1.07x),
# 666 with the best 2; one false positive more each.
ONET_SHIFT_STEP: float | None = 1 / 6
ONET_SHIFT_SCALES: tuple[float, ...] = (1.0, 1.25)
ONET_SHIFT_FROM = 0.1
ONET_SHIFT_KEEP: int | None = 4
# Issue 17's thirteenth pass: a head turned side-on shows its two eyes one behind the other, and the line through
# BlazeFace's two eye points then says nothing of the roll (35-57° off at the median for profiles, read at their true
# squares). Where the eye points lie closer than SIDE_ON_SPREAD x the box's side (a head turned ~65° or more; 0.41
# facing the camera) the roll is read from the mouth point to the eyes' midpoint, which leans MOUTH_LEAN toward the
# side the nose points to (tune identities' heads at 45-90°: 10.8-13.9°; error at profiles 5.0-5.5° at the median).
# A switch for benchmarks.
SIDE_ON_ROLL = True
SIDE_ON_SPREAD = 0.17
MOUTH_LEAN = 12.0


@dataclass
class Candidate:
    """A detection mapped back to image pixels."""

    centre: np.ndarray
    side: float
    roll: float
    score: float
    keypoints: np.ndarray  # 6x2: subject's right eye, left eye, nose tip, mouth, right ear, left ear
    rotation: int  # the tile rotation (degrees clockwise of the face) it was found at
    hits: int = 1
    members: list = field(default_factory=list)
    opinion: float | None = None  # the full-range score at this roll, when the re-check already asked for it
    unseen: bool = False  # weak, and the full-range model saw none of its contending turns (DROP_UNSEEN)
    under_floor: bool = False  # its re-check read UNDER_FLOOR_FROM up to the floor: kept only as finder.UNDER_FLOOR says
    widest: float = RECHECK_WIDEST  # the largest re-check reading, in sides of this candidate, that stands for it
    o_net: float = 0.0  # P-Net's small faces (``small_faces``): O-Net's reading, kept apart from their zeroed score
    proposed_side: float = 0.0  # P-Net's small faces: the side of P-Net's own square, before O-Net's retries moved it
    # P-Net's small faces this reading's place kept from the re-check (SMALL_FALLBACK), and what a larger retry's reading
    # pushed out (LARGER_RETRY_YIELDS, marked ``under_floor``): tried where it is refused
    fallbacks: list = field(default_factory=list)
    near_peak: bool = False  # from a P-Net peak just under SMALL_P (SMALL_NEAR_P), or the re-check's reading of one
    eighth: bool = False  # from P-Net's square at an eighth turn (SMALL_DIAGONAL), or the re-check's reading of one


@dataclass
class TileJob:
    level: np.ndarray
    scale: float  # level pixels per image pixel
    offset: tuple[float, float]  # extra image offset of the level (padding), image pixels
    rect: tuple[int, int, int, int]
    rotation: int
    window: bool = False  # a window of a level (blazeface.detect_windows), not a 128 px tile


def rot90_back(k: int, width: int, height: int) -> np.ndarray:
    """2x3 map from coordinates in ``np.rot90(tile, k)`` back to coordinates in ``tile`` (width x height)."""
    matrix = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    w, h = width, height
    for _ in range(k % 4):
        # One counter-clockwise quarter turn of a w x h image: (x, y) -> (y, w - x); back: (u, v) -> (w - v, u).
        step = np.array([[0.0, -1.0, w], [1.0, 0.0, 0.0]])
        matrix = transform.compose(matrix, step)
        w, h = h, w
    return matrix


def _starts(length: int, side: int = TILE, step: float = TILE * (1 - OVERLAP)) -> list[int]:
    if length <= side:
        return [0]
    count = math.ceil((length - side) / step) + 1
    return sorted({round(i * (length - side) / (count - 1)) for i in range(count)})


def window_layout(length: int, overlap: int = WINDOW_OVERLAP) -> tuple[int, list[int]]:
    """Window side and starts along one axis of a level: as few windows as WINDOW allows, each as small
    as an overlap of ``overlap`` level pixels allows (a multiple of 16, the model's padding step).

    A 1024 px level takes two 576 px windows instead of two 640 px ones (-10 % pixels), and 1280x720
    stills then share the 576x576 window shape of 1440x1440 ones (fewer interpreters kept).
    """
    if length <= WINDOW:
        return length, [0]
    if not TIGHT_WINDOWS:
        return WINDOW, _starts(length, WINDOW, WINDOW - overlap)
    count = math.ceil((length - WINDOW) / (WINDOW - overlap)) + 1
    side = min(WINDOW, -(-math.ceil((length + (count - 1) * overlap) / count) // 16) * 16)
    return side, _starts(length, side, side - overlap)


def use_rescue() -> bool:
    """Whether weak proposals get MTCNN's second look (RESCUE on, its weights installed)."""
    return RESCUE and mtcnn.available()


def use_small_faces() -> bool:
    """P-Net's proposals (small_faces): its weights installed and LiteRT to run it."""
    return SMALL_FACES and runtime.litert_available() and mtcnn.available(mtcnn.P_WEIGHTS_FILE)


def use_windows() -> bool:
    """Whether pyramid levels are seen in windows (needs LiteRT; WINDOWS and blazeface.USE_BATCH on)."""
    return WINDOWS and blazeface.USE_BATCH and runtime.litert_available()


def pyramid(width: int, height: int, min_face: float) -> list[tuple[float, bool]]:
    """(scale, padded) per level: level pixels per image pixel, finest first."""
    levels: list[tuple[float, bool]] = []
    side = min_face / RATIO_MIN
    longest = max(width, height)
    while side < longest:
        levels.append((TILE / side, False))
        side *= 2
    levels.append((TILE / longest, False))
    levels.append((TILE / (1.6 * longest), True))  # faces filling the frame, rotated
    return levels


def _level_image(image: np.ndarray, scale: float, padded: bool) -> tuple[np.ndarray, tuple[float, float]]:
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    level = cv2.resize(image, size, interpolation=interp)
    if not padded:
        return level, (0.0, 0.0)
    side = round(1.6 * max(w, h) * scale)
    px, py = (side - size[0]) // 2, (side - size[1]) // 2
    canvas = cv2.copyMakeBorder(level, py, side - size[1] - py, px, side - size[0] - px, cv2.BORDER_REPLICATE)
    return canvas, (px / scale, py / scale)


def _flat(region: np.ndarray) -> bool:
    """Whether a tile or window's grey-level std (all channels together) is under FLAT_STD.

    From OpenCV's per-channel mean and std (one pass, no copy of the slice; numpy's ``std`` on a
    640 px window took ~2 ms, ~30 ms per 1440x1440 still): the pooled variance is the mean of the
    channels' second moments minus the squared mean.
    """
    mean, std = cv2.meanStdDev(region)
    variance = float(np.mean(std ** 2 + mean ** 2) - np.mean(mean) ** 2)
    return variance < FLAT_STD ** 2


def tile_jobs(image: np.ndarray, min_face: float, rotations: tuple[int, ...], skip_flat: bool,
              coarse_rotations: tuple[int, ...] | None = None, workers: int = 1,
              middle_rotations: tuple[int, ...] = ()) -> list[TileJob]:
    """Tiles of every pyramid level, each at ``rotations``; the two whole-image levels at ``coarse_rotations``;
    the levels between the finest and those at ``middle_rotations`` too.

    With ``use_windows()``, levels larger than a tile come as windows instead (``TileJob.window``).
    The levels are resized on ``workers`` threads (OpenCV releases the GIL): ~28 ms for a 1440x1440
    still, which one thread alone left the other core idle for.
    """
    h, w = image.shape[:2]
    jobs: list[TileJob] = []
    levels = pyramid(w, h, min_face)
    windows = use_windows()
    if workers > 1 and BALANCED:
        images = list(runtime.pool(workers).map(lambda level: _level_image(image, *level), levels))
    else:
        images = [_level_image(image, scale, padded) for scale, padded in levels]
    for index, ((scale, _), (level, offset)) in enumerate(zip(levels, images, strict=True)):
        turns = rotations if coarse_rotations is None or index < len(levels) - 2 else coarse_rotations
        if 0 < index < len(levels) - 2:
            turns = tuple(sorted(set(turns) | set(middle_rotations)))
        lh, lw = level.shape[:2]
        if windows and index < len(levels) - 2 and max(lh, lw) > TILE:
            (side_x, xs), (side_y, ys) = window_layout(lw), window_layout(lh)
            if index == 0 and TIGHT_FINEST:
                (tight_x, txs), (tight_y, tys) = window_layout(lw, FINE_OVERLAP), window_layout(lh, FINE_OVERLAP)
                if tight_x * len(txs) * tight_y * len(tys) <= (1 - FINE_MIN_SAVING) * side_x * len(xs) * side_y * len(ys):
                    (side_x, xs), (side_y, ys) = (tight_x, txs), (tight_y, tys)
            for y0 in ys:
                for x0 in xs:
                    rect = (x0, y0, x0 + side_x, y0 + side_y)
                    if skip_flat and _flat(level[y0:rect[3], x0:rect[2]]):
                        continue
                    jobs.extend(TileJob(level, scale, offset, rect, r, window=True) for r in turns)
            continue
        for y0 in _starts(lh):
            for x0 in _starts(lw):
                rect = (x0, y0, min(x0 + TILE, lw), min(y0 + TILE, lh))
                if skip_flat and _flat(level[rect[1]:rect[3], rect[0]:rect[2]]):
                    continue
                jobs.extend(TileJob(level, scale, offset, rect, r) for r in turns)
    return jobs


def job_cost(job: TileJob) -> float:
    """Model cost of a tile or window, in input pixels (a window is padded to multiples of 16)."""
    x0, y0, x1, y1 = job.rect
    if not job.window:
        return float(TILE * TILE)
    return float(-(-(x1 - x0) // 16) * 16 * -(-(y1 - y0) // 16) * 16)


def _parse(detection: blazeface.Detection, back: np.ndarray, width: int, height: int, rotation: int,
           expected_roll: float | None = None) -> Candidate:
    """A detection in a (rotated) input of width x height, mapped by ``back`` to image pixels."""
    xmin, ymin, bw, bh = detection.box
    centre = np.array([[(xmin + bw / 2) * width, (ymin + bh / 2) * height]])
    keypoints = detection.keypoints * np.array([width, height])
    scale = transform.scale_of(back)
    centre_img = transform.apply(back, centre)[0]
    kp_img = transform.apply(back, keypoints)
    side = (bw * width + bh * height) / 2 * scale
    roll = keypoint_roll(kp_img, side)
    expected = rotation if expected_roll is None else expected_roll
    if abs(transform.wrap(roll - expected)) > BIN_TRUST:
        # Eye points of a face far from the tile's upright are guesses (often swapped): trust the turn.
        roll = float(transform.wrap(expected))
    return Candidate(centre_img, side, roll, detection.score, kp_img, rotation)


def side_on(keypoints: np.ndarray, side: float) -> bool:
    """A reading's two eye points lie one on the other (closer than SIDE_ON_SPREAD x its box's ``side``): a head
    turned ~65° or more."""
    return math.dist(keypoints[0], keypoints[1]) < SIDE_ON_SPREAD * side


def keypoint_roll(keypoints: np.ndarray, side: float) -> float:
    """A detection's roll from its six points (image pixels; ``side``: its box's): the eye line, or for a head turned
    side-on (SIDE_ON_ROLL) the line from the mouth up to the eyes, turned MOUTH_LEAN toward the nose's side."""
    right, left, nose, mouth = (np.asarray(keypoints[i], float) for i in range(4))
    if not SIDE_ON_ROLL or not side_on(keypoints, side):
        return transform.roll_of(tuple(right), tuple(left))
    up = (right + left) / 2 - mouth
    roll = math.degrees(math.atan2(up[0], -up[1]))  # clockwise roll turns "up" to (sin r, -cos r)
    across = np.array([math.cos(math.radians(roll)), math.sin(math.radians(roll))])  # the face's own right, on screen
    lean = MOUTH_LEAN if float(np.dot(nose - (right + left) / 2, across)) >= 0 else -MOUTH_LEAN
    return float(transform.wrap(roll + lean))


def _run_tiles(jobs: list[TileJob], threshold: float, weak: float | None = None,
               faint: float | None = None) -> tuple[list[Candidate], int, list[Candidate], list[Candidate]]:
    """Every tile of ``jobs`` through the short-range model (in batches: ``blazeface.detect_many``)
    and every window in one call each (``blazeface.detect_windows``): the candidates, the calls made,
    (with ``weak``) the windows' detections from ``weak`` up to ``threshold``, and (with ``faint`` too) those
    from ``faint`` up to ``weak``, else none."""
    jobs = [j for j in jobs if not j.window] + [j for j in jobs if j.window]
    tiles = [align.quarter_turned(job.level[y0:y1, x0:x1], job.rotation // 90)
             for job in jobs for x0, y0, x1, y1 in [job.rect]]
    split = sum(1 for j in jobs if not j.window)
    none = [[] for _ in tiles[split:]]
    if weak is None:
        windows, under, fainter = blazeface.detect_windows(tiles[split:], threshold), none, none
    elif faint is None:
        (windows, under), fainter = blazeface.detect_windows(tiles[split:], threshold, weak), none
    else:
        windows, under, fainter = blazeface.detect_windows(tiles[split:], threshold, weak, faint)
    seen = blazeface.detect_many(tiles[:split], threshold) + windows
    under = [[] for _ in tiles[:split]] + under
    fainter = [[] for _ in tiles[:split]] + fainter
    found: list[Candidate] = []
    weaker: list[Candidate] = []
    faintest: list[Candidate] = []
    for job, tile, detections, low, lower in zip(jobs, tiles, seen, under, fainter, strict=True):
        if not detections and not low and not lower:
            continue
        x0, y0, x1, y1 = job.rect
        k = job.rotation // 90
        # rotated tile -> tile -> level -> image
        to_level = transform.compose(np.array([[1.0, 0, x0], [0, 1.0, y0]]), rot90_back(k, x1 - x0, y1 - y0))
        to_image = transform.compose(
            np.array([[1 / job.scale, 0, -job.offset[0]], [0, 1 / job.scale, -job.offset[1]]]), to_level)
        th, tw = tile.shape[:2]
        found.extend(_parse(d, to_image, tw, th, job.rotation) for d in detections)
        weaker.extend(_parse(d, to_image, tw, th, job.rotation) for d in low)
        faintest.extend(_parse(d, to_image, tw, th, job.rotation) for d in lower)
    return found, len(jobs), weaker, faintest


def run_parallel(fn, items: list, workers: int, cost=None, first=None) -> list:
    """Run ``fn(chunk)`` on the shared pool over chunks of ``items``; the chunks' results in order.

    With ``cost`` (item -> a number) ``items`` are split into one chunk per worker of about equal
    total cost (largest first, each to the lightest chunk): the pyramid's windows differ 30x in
    size, and a fixed split left one core idle for up to a window. Without it every item is its
    own task, taken by whichever worker is free (re-checks cost 2-13 model calls each); ``first``
    (item -> a sort key) then says which tasks start first (the results stay in ``items``' order).
    """
    return start_parallel(fn, items, workers, cost, first)()


def start_parallel(fn, items: list, workers: int, cost=None, first=None) -> Callable[[], list]:
    """``run_parallel``'s work, started on the pool; call what it returns for the results.

    Work submitted to the pool in between is taken by the first worker that comes free, so it fills
    the gap that the slower chunk leaves. With one worker nothing starts until the results are asked for.
    """
    if not items:
        return list
    workers = max(1, min(workers, len(items)))
    if workers == 1:
        return lambda: [fn(items)]
    if not BALANCED:
        chunks = [items[i::workers] for i in range(workers)]
    elif cost is None:
        chunks = [[item] for item in items]
    else:
        chunks, loads = [[] for _ in range(workers)], [0.0] * workers
        for item in sorted(items, key=lambda i: -cost(i)):
            lightest = loads.index(min(loads))
            chunks[lightest].append(item)
            loads[lightest] += cost(item)
    chunks = [chunk for chunk in chunks if chunk]
    starts = list(range(len(chunks)))
    if first is not None and cost is None and BALANCED:
        starts.sort(key=lambda i: first(chunks[i][0]))
    executor = runtime.pool(workers)
    futures = dict(zip(starts, [executor.submit(fn, chunks[i]) for i in starts], strict=True))
    return lambda: [futures[i].result() for i in range(len(chunks))]


def places_of(c: Candidate, centres: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """For each of n candidates given by their centres (n x 2) and sides: whether its centre and ``c``'s lie
    within half the larger one's side of each other. One vector operation: merging a 1440x1440 still's
    proposals asked this pair by pair ~9000 times."""
    return np.hypot(c.centre[0] - centres[:, 0], c.centre[1] - centres[:, 1]) < 0.5 * np.maximum(sides, c.side)


def standing_at(candidates: list[Candidate], others: list[Candidate], larger: float | None = None,
                proposed: bool = False) -> list[np.ndarray]:
    """For each of ``candidates``, which of ``others`` stand at its place (places_of); with ``larger``, others more than
    ``larger`` times a candidate's side do not (half such a side reaches far past a small face). ``proposed``: the
    side of P-Net's own square for its small faces (``Candidate.proposed_side``), where O-Net's retries grew it."""
    centres = np.array([c.centre for c in others], float).reshape(-1, 2)
    sides = np.array([c.side for c in others], float)
    return [places_of(c, centres, sides)
            & (larger is None or sides <= larger * (c.proposed_side if proposed and c.proposed_side else c.side))
            for c in candidates]


def near_none(candidates: list[Candidate], others: list[Candidate], larger: float | None = None) -> list[Candidate]:
    """Those of ``candidates`` at whose place none of ``others`` stands (``standing_at``), in their order."""
    return [c for c, standing in zip(candidates, standing_at(candidates, others, larger), strict=True)
            if not standing.any()]


def merge(candidates: list[Candidate]) -> list[Candidate]:
    """Greedy non-maximum merge: same place (centre within half a face) and similar size."""
    clusters: list[Candidate] = []
    centres, sides = np.empty((len(candidates), 2)), np.empty(len(candidates))
    for c in sorted(candidates, key=lambda c: -c.score):
        n = len(clusters)
        ratio = c.side / sides[:n]
        joins = np.flatnonzero(places_of(c, centres[:n], sides[:n]) & (ratio > 0.5) & (ratio < 2.0))
        if joins.size:
            cluster = clusters[joins[0]]
            cluster.hits += 1
            cluster.members.append(c)
        else:
            c.members = [c]
            centres[n], sides[n] = c.centre, c.side
            clusters.append(c)
    return clusters


def fallbacks_merged(clusters: list[Candidate]) -> list[Candidate]:
    """``clusters`` (``merge``'s), each with its members' fallbacks after its own: a retry's reading merged under a
    stronger one at its place keeps what it pushed out (LARGER_RETRY_YIELDS) for that one's refusal."""
    for cluster in clusters:
        for member in cluster.members:
            if member is not cluster:
                cluster.fallbacks += member.fallbacks
    return clusters


def mirrored_x(matrix: np.ndarray, width: float) -> np.ndarray:
    """``matrix`` (image -> crop) followed by mirroring the ``width`` px wide crop left to right."""
    return transform.compose(np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0]]), matrix)


def recheck(image: np.ndarray, centre: tuple[float, float], side: float, roll: float, threshold: float,
            rotation: int = 0, mirrored: bool = False) -> Candidate | None:
    """Look again at an upright crop where the face spans RECHECK_RATIO of the model's input.

    Small faces are upscaled at most MAX_UPSCALE times: blurrier than that, the model scores them
    lower, not higher. ``mirrored``: the crop is seen mirrored left to right (finder.MIRROR_CHECK).
    """
    scale = min(RECHECK_RATIO * TILE / side, MAX_UPSCALE)
    matrix = transform.upright(centre, roll, scale, (TILE / 2, TILE / 2))
    if mirrored:
        matrix = mirrored_x(matrix, TILE)
    crop = warp(image, matrix, (TILE, TILE))
    best: Candidate | None = None
    back = transform.invert(matrix)
    for d in blazeface.detect_many([crop], threshold)[0]:
        c = _parse(d, back, TILE, TILE, rotation, roll)
        near = math.hypot(c.centre[0] - centre[0], c.centre[1] - centre[1]) < 0.5 * side
        if near and 0.5 < c.side / side < RECHECK_WIDEST and (best is None or c.score > best.score):
            best = c
    return best


def recheck_turns(image: np.ndarray, centre: tuple[float, float], side: float, roll: float,
                  threshold: float, prior: float = 0.0, floor: float = 0.0,
                  widest: float = RECHECK_WIDEST) -> tuple[Candidate | None, int]:
    """Re-check a candidate whose orientation is unknown: one upright crop seen at its quarter turns.

    Returns the chosen reading (None: no face there) and the short-range calls made.

    The short-range model finds faces up to ~40 % of its input at any roll, but its eye points
    assume an upright face, so a proposal's roll can be off by any multiple of 90°. Its score barely
    depends on roll either: an upright face seen upside down often scores about as high (0.79 vs
    0.84 measured) and the best turn alone then picks the wrong half, after which the mesh and the
    full-range model reject the face. So every turn within TURN_AMBIGUITY of the best is scored by
    the full-range model too (roll-sensitive) and the best geometric mean wins. ``prior`` is the
    proposal's own score, a look at the face in its own turn: that turn is a contender when the
    prior is within TURN_AMBIGUITY of the best (a 40 px face scored 0.87 upright in its tile, 0.58
    upright and 0.79 upside down on the re-check crop).

    The turns are seen in the order 0, 180, 90, 270° and the search stops after the first two when
    neither sees a face near the proposal (OPPOSITE_TURNS_DECIDE): on the tune scenes a real face
    was seen at 0° or 180° in 78 of 78 re-checks (at 3-4 of the 4 turns in 76), while 112 of
    147 false proposals were seen at neither, so half of the re-check calls on clutter are saved.

    When even the best turn scores under ``floor`` (the caller drops such readings) the full-range
    model is not asked to pick among the turns (OPINIONS_ABOVE_FLOOR). A reading stands for the candidate from half
    its side up to ``widest`` times it.
    """
    scale = min(RECHECK_RATIO * TILE / side, MAX_UPSCALE)
    matrix = transform.upright(centre, roll, scale, (TILE / 2, TILE / 2))
    crop = warp(image, matrix, (TILE, TILE))
    inverse = transform.invert(matrix)
    per_turn: list[Candidate] = []
    calls, wider = 0, False
    for pair in ((0, 2), (1, 3)):  # each pair of opposite turns is one batched model call
        if calls == 2 and not per_turn and not wider and OPPOSITE_TURNS_DECIDE:
            return None, calls  # two opposite turns saw nothing here: no face at any roll
        calls += 2
        found = blazeface.detect_many([align.quarter_turned(crop, k) for k in pair], threshold)
        seen = list(zip(pair, found, strict=True))
        best, too_wide = _best_near(seen, inverse, centre, side, roll, widest)
        per_turn.extend(best)
        wider = wider or too_wide  # a reading too wide to stand for the candidate still says something is there
    if not per_turn:
        return None, calls
    if OPINIONS_ABOVE_FLOOR and max(c.score for c in per_turn) < floor:
        return max(per_turn, key=lambda c: c.score), calls
    return _choose_turn(image, per_turn, prior, floor), calls


def _best_near(seen: list[tuple[int, list[blazeface.Detection]]], inverse: np.ndarray,
               centre: tuple[float, float], side: float, roll: float,
               widest: float = RECHECK_WIDEST) -> tuple[list[Candidate], bool]:
    """Per quarter turn k of the re-check crop, its best detection near the proposal (if any), from half its side up
    to ``widest`` times it; and whether a detection near it from ``widest`` up to RECHECK_WIDEST times was seen."""
    out, too_wide = [], False
    for k, detections in seen:
        back = transform.compose(inverse, rot90_back(k, TILE, TILE))
        best: Candidate | None = None
        for d in detections:
            c = _parse(d, back, TILE, TILE, 90 * k, roll + 90 * k)
            near = math.hypot(c.centre[0] - centre[0], c.centre[1] - centre[1]) < 0.5 * side
            too_wide = too_wide or (near and widest <= c.side / side < RECHECK_WIDEST)
            if near and 0.5 < c.side / side < widest and (best is None or c.score > best.score):
                best = c
        if best is not None:
            out.append(best)
    return out, too_wide


def _choose_turn(image: np.ndarray, per_turn: list[Candidate], prior: float, floor: float = 0.0) -> Candidate:
    """The re-check's reading: the best turn, or the full-range model's pick among close ones.

    A turn reading under ``floor`` does not contend when the best one reaches it (PICK_ABOVE_FLOOR): the caller
    drops such a reading, so picking it lost the face even where another turn would have gone on.
    """
    per_turn.sort(key=lambda c: -c.score)
    top = per_turn[0].score
    contenders = [c for c in per_turn[:2] if c.score >= top - TURN_AMBIGUITY]
    own = next((c for c in per_turn[2:] if c.rotation == 0 and prior >= top - TURN_AMBIGUITY), None)
    contenders += [own] if own is not None else []
    if PICK_ABOVE_FLOOR and top >= floor:
        contenders = [c for c in contenders if c.score >= floor]
    if len(contenders) == 1:
        return contenders[0]
    _opinions(image, contenders)
    if max(c.opinion or 0.0 for c in contenders) <= 0.0:
        # The full-range model sees none of them (small faces): keep the best turn. A weak one is dropped at
        # refinement unless the mesh fits it (see UNSEEN_DROP_BELOW).
        contenders[0].unseen = DROP_UNSEEN and top < UNSEEN_DROP_BELOW
        return contenders[0]
    return max(contenders, key=lambda c: math.sqrt(c.score * (c.opinion or 0.0)))


def detect(image: np.ndarray, *, min_face: float, rotations: tuple[int, ...], proposal: float, floor: float,
           workers: int, skip_flat: bool = True, coarse_rotations: tuple[int, ...] | None = None,
           middle_rotations: tuple[int, ...] = (), second_look: bool = True,
           propose_small: bool = True) -> tuple[list[Candidate], int]:
    """Candidates that survive the upright re-check (score >= ``floor``), and the detector calls made; with
    ``second_look`` also those of at most UNDER_FLOOR_MAX_SIDE read from UNDER_FLOOR_FROM up to ``floor`` away from
    them, marked ``under_floor``.

    ``second_look``: weak window proposals that MTCNN takes for faces are re-checked too (``rescued``), and with
    ``propose_small`` P-Net's proposals of small faces (``small_faces``).

    With a single tile turn the orientation of each proposal is unknown, so every merged proposal
    is re-checked at its quarter turns (2 calls where nothing is there, else 4); with all four tile
    turns one re-check at the proposal's own roll suffices.
    """
    jobs = tile_jobs(image, min_face, rotations, skip_flat, coarse_rotations, workers, middle_rotations)
    turns = len(set(rotations)) < 4
    # The second look needs the quarter-turn re-check its candidates go through (turns).
    rescue = second_look and turns and use_rescue() and proposal > RESCUE_FROM
    faint_from = RESCUE_FAINT if rescue and RESCUE_FAINT is not None and RESCUE_FAINT < RESCUE_FROM else None
    windows = start_parallel(lambda chunk: _run_tiles(chunk, proposal, RESCUE_FROM if rescue else None, faint_from),
                             jobs, workers, cost=job_cost)
    # P-Net's small faces and the weak proposals' second look each run on one worker while the others re-check the
    # strong ones (one task per re-check: the workers share them out as they come free). P-Net needs only the image:
    # queued behind the windows (OVERLAPPED), it is taken by the first worker done with them.
    small_faces_on = rescue and propose_small and use_small_faces()
    pool_small, overlapped = small_faces_on and workers > 1, OVERLAPPED and workers > 1
    small_pending = runtime.pool(workers).submit(small_faces, image) if pool_small and overlapped else None
    results = windows()
    raw = [c for found, *_ in results for c in found]
    calls = sum(n for _, n, *_ in results)
    clusters = merge(raw)
    weak = merge([c for _, _, weak, _ in results for c in weak])
    faint = merge([c for *_, faint in results for c in faint])
    if pool_small and not overlapped:
        small_pending = runtime.pool(workers).submit(small_faces, image)
    pending = (runtime.pool(workers).submit(rescued, image, weak, clusters, faint)
               if (weak or faint) and workers > 1 else None)

    def check(chunk: list[Candidate]) -> tuple[list[Candidate | None], int]:
        out, made = [], 0
        for c in chunk:
            best, n = confirm(image, c, turns, floor)
            out.append(best)
            made += n
        return out, made

    cluster_checks = start_parallel(check, clusters, workers)
    # The second look's candidates need no cluster's reading: their re-checks queue behind the clusters' as soon as
    # they are known (STREAMED), so the pool does not wait for the clusters' last re-check first.
    rescued_checks = (start_parallel(check, pending.result(), workers)
                      if pending is not None and STREAMED and overlapped else None)
    checked = cluster_checks()
    readings = [c for chunk, _ in checked for c in chunk]  # one per cluster, in order
    where_unseen = rescue and RESCUE_WHERE_UNSEEN and (weak or faint)
    # It needs only the clusters' readings: on the pool it runs beside the weak proposals' re-checks (OVERLAPPED).
    unseen_pending = (runtime.pool(workers).submit(rescued_where_unseen, image, weak, clusters, readings, floor, faint)
                      if where_unseen and overlapped else None)
    # Likewise the second look where a re-check saw nothing: its re-checks queue behind the others' as it ends.
    unseen_checks = (start_parallel(check, unseen_pending.result(), workers)
                     if unseen_pending is not None and STREAMED else None)
    if rescued_checks is not None:
        checked += rescued_checks()
    elif weak or faint:
        checked += run_parallel(check, pending.result() if pending else rescued(image, weak, clusters, faint), workers)
    if unseen_checks is not None:
        checked += unseen_checks()
    elif where_unseen:
        checked += run_parallel(check, unseen_pending.result() if unseen_pending
                                else rescued_where_unseen(image, weak, clusters, readings, floor, faint), workers)
    small = (small_pending.result() if small_pending else small_faces(image)) if small_faces_on else []
    blocked: list[Candidate] = []  # P-Net's faces a reading stands at (SMALL_FALLBACK)
    if small:  # only where no proposal's re-check saw a face: there P-Net would add nothing
        seen = [c for chunk, _ in checked for c in chunk if c is not None and c.score >= floor]
        standing = standing_at(small, seen, SMALL_BLOCK_RATIO, SMALL_BLOCK_OWN)
        blocked = [c for c, at in zip(small, standing, strict=True) if at.any()] if SMALL_FALLBACK else []
        small = [c for c, at in zip(small, standing, strict=True) if not at.any()]
        small_checked = run_parallel(check, small, workers)
        checked += small_checked
        if SMALL_OWN_FALLBACK is not None and yunet.available():
            for c, reading in zip(small, [r for chunk, _ in small_checked for r in chunk], strict=True):
                if (reading is not None and abs(transform.wrap(reading.roll - c.roll)) > SMALL_OWN_FALLBACK
                        and yunet_opinion(image, tuple(c.centre), c.side, c.roll) >= SMALL_OWN_YUNET):
                    reading.fallbacks.append(c)
    calls += sum(n for _, n in checked)
    survivors = [c for chunk, _ in checked for c in chunk if c is not None and c.score >= floor]
    kept = fallbacks_merged(merge(survivors))
    if second_look and UNDER_FLOOR:
        under = [c for chunk, _ in checked for c in chunk if c is not None and c.score < floor and _handed_on(c)]
        for c in near_none(merge(under), kept):  # where a survivor reads a face, that one stands
            c.under_floor = True
            kept.append(c)
    if second_look and UNDER_FLOOR and SMALL_UNSEEN:
        # P-Net's small faces the re-check read nothing on (or under UNDER_FLOOR_FROM) where nothing else stands
        for c in near_none([c for c in small if _unseen_handed_on(c)], kept, SMALL_BLOCK_RATIO):
            kept.append(dataclasses.replace(c, score=c.o_net, under_floor=True))
    # each P-Net face kept from the re-check goes with the readings at its place, for their refusal
    for c, standing in zip(blocked, standing_at(blocked, kept, SMALL_BLOCK_RATIO, SMALL_BLOCK_OWN), strict=True):
        for k in np.flatnonzero(standing):
            kept[k].fallbacks.append(c)
    return kept, calls


def shifted_squares(centre: tuple[float, float], side: float, turn: float
                    ) -> list[tuple[tuple[float, float], float, float]]:
    """The squares about (centre, side) that ONET_SHIFT_STEP reads: ONET_SHIFT_STEP x the side off in the 8 directions
    and in place, at each of ONET_SHIFT_SCALES x the side, less the square itself; all at ``turn``."""
    step = (ONET_SHIFT_STEP or 0.0) * side
    return [((centre[0] + dx * step, centre[1] + dy * step), side * scale, turn)
            for scale in ONET_SHIFT_SCALES for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy or scale != 1.0]


def _shifts_worth_reading(image: np.ndarray, indices: list[int], squares: list[tuple[tuple[float, float], float, float]]
                          ) -> list[tuple[int, tuple[tuple[float, float], float, float]]]:
    """(index, square) of the ``shifted_squares`` about each of ``squares`` at ``indices`` that O-Net is to read: the
    ONET_SHIFT_KEEP of each that R-Net reads best (one R-Net call for all), or all of them."""
    around = [(i, square) for i in indices for square in shifted_squares(*squares[i])]
    if ONET_SHIFT_KEEP is None or not around:
        return around
    read = mtcnn.scores(image, [square for _, square in around], small=True).reshape(len(indices), -1)
    per = read.shape[1]
    return [around[k * per + j] for k in range(len(indices)) for j in np.argsort(-read[k], kind="stable")[:ONET_SHIFT_KEEP]]


def o_net_rolls(image: np.ndarray, squares: list[tuple[tuple[float, float], float, float]], threshold: float
                ) -> tuple[np.ndarray, list[float], list[tuple[tuple[float, float], float, float]]]:
    """``starting_rolls`` of each (centre, side, turn) square R-Net kept, and the square it was read on. Where O-Net
    reads the square under ``threshold`` at its turn (ONET_RETRY), it reads it half a turn on too, and R-Net's
    box-regressed square at both: the best of those that reaches ``threshold`` and ONET_RETRY_BAR is read as the square
    was (R-Net's turn pick is often upside down at 24 px, and P-Net's peaks lie up to a third of a face off its
    centre); from ONET_EYE_FROM up it reads the square at the roll of its own eye points there too, and from
    ONET_SHIFT_FROM up the squares a little off and larger about it that R-Net reads best (``_shifts_worth_reading``),
    which must reach ONET_EYE_BAR (ONET_EYE_RETRY, ONET_SHIFT_STEP)."""
    scores, rolls, points = _starting_rolls(image, squares, threshold)
    failing = [i for i in range(len(squares)) if scores[i] < threshold] if ONET_RETRY else []
    if not failing:
        return scores, rolls, squares
    moved = mtcnn.box_regressed(image, [squares[i] for i in failing])
    bar = max(threshold, ONET_RETRY_BAR)  # more readings: a clutter patch reaches a low bar more often
    eye_bar = max(bar, ONET_EYE_BAR)
    tries: list[tuple[int, tuple[tuple[float, float], float, float], float]] = []  # (square, try, its bar)
    if ONET_SHIFT_STEP is not None:
        tries += [(i, square, eye_bar) for i, square in _shifts_worth_reading(
            image, [i for i in failing if scores[i] >= ONET_SHIFT_FROM], squares)]
    for i, (centre, side) in zip(failing, moved, strict=True):
        own_centre, own_side, turn = squares[i]
        flipped = float(transform.wrap(turn + 180.0))
        # itself half a turn on, the regressed square at the turn and half a turn on
        tries += [(i, (own_centre, own_side, flipped), bar), (i, (centre, side, turn), bar),
                  (i, (centre, side, flipped), bar)]
        if ONET_RETRY_QUARTERS:  # at the eye retry's bar: more tries, more clutter reaching a low one
            tries += [(i, (own_centre, own_side, float(transform.wrap(turn + q))), eye_bar) for q in (90.0, -90.0)]
        eye_roll = transform.roll_of(points[i, 0], points[i, 1])
        if ONET_EYE_RETRY and scores[i] >= ONET_EYE_FROM and abs(transform.wrap(eye_roll - turn)) <= LANDMARK_TRUST:
            tries.append((i, (own_centre, own_side, float(transform.wrap(eye_roll))), eye_bar))
    read = mtcnn.scores(image, [square for _, square, _ in tries])
    best: dict[int, tuple[float, tuple[tuple[float, float], float, float]]] = {}
    for (i, square, at_least), score in zip(tries, read, strict=True):
        if score >= at_least and score > best.get(i, (-1.0, square))[0]:
            best[i] = (float(score), square)
    chosen = [(i, square) for i, (_, square) in best.items()]
    if not chosen:
        return scores, rolls, squares
    again, again_rolls = starting_rolls(image, [square for _, square in chosen], threshold)
    squares, rolls = list(squares), list(rolls)
    for (i, square), score, roll in zip(chosen, again, again_rolls, strict=True):
        scores[i], rolls[i], squares[i] = score, roll, square
    return scores, rolls, squares


def small_face_level(image: np.ndarray, scale: float = SMALL_SCALE) -> np.ndarray:
    """The image as P-Net reads it for small faces: resized to ``scale``, both sides even (P-Net pools like Caffe)."""
    height, width = image.shape[:2]
    level_w, level_h = 2 * max(6, round(width * scale / 2)), 2 * max(6, round(height * scale / 2))
    return cv2.resize(image, (level_w, level_h), interpolation=cv2.INTER_AREA)


def small_face_peaks(image: np.ndarray, turn: int, scale: float = SMALL_SCALE, threshold: float = SMALL_P,
                     level: np.ndarray | None = None) -> list[tuple[float, float, float]]:
    """(x, y, P-Net score) in image pixels of each peak of P-Net's face map (a cell the highest of the SMALL_PEAK x
    SMALL_PEAK around it) scoring ``threshold`` or more, the image read at ``scale`` turned ``turn`` quarter turns
    (np.rot90); each stands for a ``mtcnn.P_CELL / scale`` px square upright at that turn. ``level``: the image's
    ``small_face_level`` at ``scale``, when the caller reads it at several turns (made here otherwise)."""
    height, width = image.shape[:2]
    level = small_face_level(image, scale) if level is None else level
    level_h, level_w = level.shape[:2]
    turned = align.quarter_turned(level, turn)
    face = mtcnn.load_proposal().face_map(turned)
    peaks = (face >= threshold) & (face >= cv2.dilate(face, np.ones((SMALL_PEAK, SMALL_PEAK), np.uint8)))
    rows, cols = np.nonzero(peaks)
    if not len(rows):
        return []
    # The cell's square, centre (2j + 6, 2i + 6) in the turned level -> the level -> the image.
    back = transform.compose(np.array([[width / level_w, 0.0, 0.0], [0.0, height / level_h, 0.0]]),
                             rot90_back(turn, level_w, level_h))
    centres = np.c_[2.0 * cols + mtcnn.P_CELL / 2, 2.0 * rows + mtcnn.P_CELL / 2, np.ones(len(rows))] @ back.T
    return [(float(x), float(y), float(score)) for (x, y), score in zip(centres, face[rows, cols], strict=True)]


def small_faces(image: np.ndarray, scale: float = SMALL_SCALE) -> list[Candidate]:
    """P-Net's proposals (at SMALL_TURNS, and at the other turns where those stir: SMALL_STIR, SMALL_FAINT; at the
    eighth turns where a stir is not explained: SMALL_DIAGONAL) that R-Net and O-Net read as faces, one per place, as
    candidates for the re-check, turned to R-Net's best quarter turn (with all four P-Net turns: P-Net's own; an eighth
    turn's square keeps its roll); they carry no score of their own, so the re-check's turn pick has no prior
    (docs/faces.md, the fifteenth, twenty-sixth, forty-fifth and forty-sixth passes)."""
    side = mtcnn.P_CELL / scale
    level = small_face_level(image, scale)  # resized once for every turn

    def square(x: float, y: float, score: float, turn: int) -> Candidate:
        return Candidate(np.array([x, y]), side, 90.0 * turn, score, np.zeros((6, 2)), 90 * turn)

    def stirred(at: list[Candidate]) -> list[Candidate]:  # the squares P-Net reads at the other turns around them
        return [square(*peak) for peak in stirred_peaks(image, level, [tuple(c.centre) for c in at])]

    faint_from = SMALL_FAINT if SMALL_STIR is not None else None
    low = min(bar for bar in (SMALL_P, SMALL_STIR, SMALL_NEAR_P, faint_from) if bar is not None)
    peaks = [square(x, y, score, turn) for turn in SMALL_TURNS
             for x, y, score in small_face_peaks(image, turn, scale, threshold=low, level=level)]
    squares = [c for c in peaks if c.score >= SMALL_P]
    faint: list[Candidate] = []  # stirred from a peak under SMALL_STIR: O-Net's bar for them is SMALL_FAINT_O
    stirring: list[Candidate] = []
    quarter: list[Candidate] = []
    if SMALL_STIR is not None:  # the peaks under SMALL_P at the place of none over it (places_of: half a face)
        stirring = near_none([c for c in peaks if SMALL_STIR <= c.score < SMALL_P], squares)
        quarter = stirred(stirring)
        squares += quarter
        if faint_from is not None:
            faint = stirred(near_none([c for c in peaks if faint_from <= c.score < SMALL_STIR], squares + stirring))
            squares += faint
    diagonal: list[Candidate] = []  # stirring places no quarter turn explained, read at the eighth turns
    if SMALL_DIAGONAL and stirring:
        places = [tuple(c.centre) for c in near_none(stirring, quarter)]
        eighth = [Candidate(np.array([x, y]), side, roll, score, np.zeros((6, 2)), int(roll), eighth=True)
                  for x, y, score, roll in diagonal_peaks(image, level, places)]
        if eighth:  # R-Net at their own roll, not its quarter-turn pick
            read = mtcnn.scores(image, [(tuple(c.centre), c.side, c.roll) for c in eighth], small=True)
            diagonal = [c for c, score in zip(eighth, read, strict=True) if score >= SMALL_DIAGONAL_R]
    near = [] if SMALL_NEAR_P is None else r_net_turned(
        image, [c for c in peaks if SMALL_NEAR_P <= c.score < SMALL_P], SMALL_NEAR_R)
    if not squares and not near and not diagonal:
        return []
    if len(SMALL_TURNS) < 4:  # R-Net picks the turn
        first, turns = r_net_turns(image, [(tuple(c.centre), c.side) for c in squares], SMALL_R)
        for c, roll in zip(squares, turns, strict=True):
            c.roll = roll
            c.rotation = int(c.roll)
    else:
        first = mtcnn.scores(image, [(tuple(c.centre), c.side, c.roll) for c in squares], small=True)
    squares = [c for c, score in zip(squares, first, strict=True) if score >= SMALL_R] + near + diagonal
    second, rolls, picked = o_net_rolls(image, [(tuple(c.centre), c.side, c.roll) for c in squares], SMALL_O)
    for c, (centre, side, _), score, roll in zip(squares, picked, second, rolls, strict=True):
        c.centre, c.side, c.score, c.roll, c.rotation = np.array(centre), side, float(score), roll, int(round(roll))
    faint_ids = {id(c) for c in faint}
    diagonal_ids = {id(c) for c in diagonal}
    out = one_per_place([c for c in squares if id(c) not in diagonal_ids
                         and c.score >= (SMALL_FAINT_O if id(c) in faint_ids else SMALL_O)])
    out += merge(near_none([c for c in squares if id(c) in diagonal_ids and c.score >= SMALL_DIAGONAL_O], out))
    for c in out:
        c.o_net = c.score
        c.proposed_side = mtcnn.P_CELL / scale
        c.score = 0.0  # no prior for the re-check's turn pick
        c.widest = RECHECK_WIDEST if SMALL_WIDEST is None else SMALL_WIDEST
    return out


def one_per_place(passed: list[Candidate]) -> list[Candidate]:
    """The squares O-Net passed, one per place, O-Net's best (a face is often two peaks); a near peak's
    (SMALL_NEAR_P) only where no other peak's stands, so what the other peaks give is as it was without them."""
    out = merge([c for c in passed if not c.near_peak])
    return out + merge(near_none([c for c in passed if c.near_peak], out))


def r_net_turned(image: np.ndarray, squares: list[Candidate], bar: float) -> list[Candidate]:
    """Those of ``squares`` R-Net reads ``bar`` or more at one of the four quarter turns, each turned to the one it reads
    best and marked ``near_peak`` (SMALL_NEAR_P's peaks just under SMALL_P)."""
    if not squares:
        return []
    read = mtcnn.quarter_turn_scores(image, [(tuple(c.centre), c.side) for c in squares], small=True)
    kept = []
    for c, row in zip(squares, read, strict=True):
        if row.max() >= bar:
            turn = int(np.argmax(row))
            kept.append(dataclasses.replace(c, roll=90.0 * turn, rotation=90 * turn, near_peak=True))
    return kept


def stirred_peaks(image: np.ndarray, level: np.ndarray, places: list[tuple[float, float]]
                  ) -> list[tuple[float, float, float, int]]:
    """(x, y, P-Net score, turn) in image pixels of P-Net's best cell reaching SMALL_P on a SMALL_STIR_CROP px crop of
    the image's ``level`` (``small_face_level``) around each (x, y) image place, read at the quarter turns not in
    SMALL_TURNS (SMALL_STIR: where the turns read stir but do not reach SMALL_P). The crops start at even level pixels,
    so their cells are the whole level's (``mtcnn.ProposalNet.crop_maps``)."""
    height, width = image.shape[:2]
    level_h, level_w = level.shape[:2]
    crop = SMALL_STIR_CROP
    turns = [k for k in range(4) if k not in SMALL_TURNS]
    if not places or not turns or min(level_h, level_w) < crop:
        return []
    fx, fy = level_w / width, level_h / height
    corners = list(dict.fromkeys((min(max(0, 2 * round((x * fx - crop / 2) / 2)), level_w - crop),
                                  min(max(0, 2 * round((y * fy - crop / 2) / 2)), level_h - crop)) for x, y in places))
    crops = np.stack([align.quarter_turned(level[y0:y0 + crop, x0:x0 + crop], k) for x0, y0 in corners for k in turns])
    maps = mtcnn.load_proposal().crop_maps(crops)
    found: dict[tuple[float, float, int], float] = {}  # one per level cell and turn: nearby places' crops overlap
    for n, face in enumerate(maps):
        i, j = np.unravel_index(int(np.argmax(face)), face.shape)
        if face[i, j] < SMALL_P:
            continue
        (x0, y0), k = corners[n // len(turns)], turns[n % len(turns)]
        u, v = rot90_back(k, crop, crop) @ np.array([2.0 * j + mtcnn.P_CELL / 2, 2.0 * i + mtcnn.P_CELL / 2, 1.0])
        found[(float(x0 + u), float(y0 + v), k)] = float(face[i, j])
    return [(u / fx, v / fy, score, k) for (u, v, k), score in found.items()]


def diagonal_peaks(image: np.ndarray, level: np.ndarray, places: list[tuple[float, float]]
                   ) -> list[tuple[float, float, float, float]]:
    """(x, y, P-Net score, roll) in image pixels of P-Net's best cell reaching SMALL_P on a SMALL_STIR_CROP px crop of
    the image's ``level`` about each (x, y) image place, turned to each of DIAGONALS (45° off the quarter turns). The
    level is turned once, by the first, and cut there: np.rot90 of a cut gives the others."""
    height, width = image.shape[:2]
    level_h, level_w = level.shape[:2]
    crop = SMALL_STIR_CROP
    if not places or min(level_h, level_w) < crop:
        return []
    fx, fy = level_w / width, level_h / height
    side = 2 * math.ceil((level_w + level_h) / math.sqrt(2) / 2) + 2
    at = np.c_[np.asarray(places, np.float64) * (fx, fy), np.ones(len(places))]
    matrix = transform.upright((level_w / 2, level_h / 2), DIAGONALS[0], 1.0, (side / 2, side / 2))
    turned = warp(level, matrix, (side, side), interpolation=cv2.INTER_LINEAR)
    back = transform.invert(matrix)
    corners = list(dict.fromkeys(map(tuple, np.clip(np.rint(at @ matrix.T - crop / 2).astype(int), 0,
                                                    side - crop).tolist())))  # nearby places may share one
    # np.rot90 by k of the crop at roll r is the crop at roll r + 90k: the four diagonals from one turned level
    crops = np.stack([align.quarter_turned(turned[y0:y0 + crop, x0:x0 + crop], k)
                      for x0, y0 in corners for k in range(4)])
    maps = mtcnn.load_proposal().crop_maps(crops).reshape(len(crops), -1)
    best = maps.argmax(axis=1)
    found: dict[tuple[int, int, float], tuple[float, float, float]] = {}
    for n in np.flatnonzero(maps[np.arange(len(maps)), best] >= SMALL_P):
        (x0, y0), k = corners[n // 4], n % 4
        i, j = divmod(int(best[n]), (crop - mtcnn.P_CELL) // 2 + 1)
        roll = float(transform.wrap(DIAGONALS[0] + 90.0 * k))
        a, b = rot90_back(k, crop, crop) @ np.array([2.0 * j + mtcnn.P_CELL / 2, 2.0 * i + mtcnn.P_CELL / 2, 1.0])
        u, v = back @ np.array([x0 + a, y0 + b, 1.0])
        key = (round(u / 2), round(v / 2), roll)  # nearby places' crops find the same cell
        if maps[n, best[n]] > found.get(key, (0.0, 0.0, 0.0))[2]:
            found[key] = (float(u), float(v), float(maps[n, best[n]]))
    return [(u / fx, v / fy, score, roll) for (_, _, roll), (u, v, score) in found.items()]


def r_net_turns(image: np.ndarray, squares: list[tuple[tuple[float, float], float]], bar: float
                ) -> tuple[np.ndarray, list[float]]:
    """R-Net's best reading of each (centre, side) square at its quarter turns and the roll it is at. A square whose
    best there is from R_NET_SECOND_FROM up to ``bar`` (the caller's) is read at the quarter turns from the other
    R_NET_OFFSETS too, where a reading counts from R_NET_BETWEEN up: a 24 px face rolled 45° between two quarter
    turns reads under ``bar`` at both."""
    read = mtcnn.quarter_turn_scores(image, squares, small=True)
    best = read.max(axis=1)
    rolls = [90.0 * float(k) for k in np.argmax(read, axis=1)]
    between = [i for i in range(len(squares)) if R_NET_SECOND_FROM <= best[i] < bar]
    if len(R_NET_OFFSETS) > 1 and between:
        more = mtcnn.quarter_turn_scores(image, [squares[i] for i in between], small=True, offsets=R_NET_OFFSETS[1:])
        for i, row in zip(between, more, strict=True):
            k = int(np.argmax(row))
            if row[k] >= R_NET_BETWEEN and row[k] > best[i]:
                best[i], rolls[i] = row[k], float(transform.wrap(R_NET_OFFSETS[1 + k // 4] + 90.0 * (k % 4)))
    return best, rolls


def _rescue_sized(proposals: list[Candidate]) -> list[Candidate]:
    """The proposals, each one over RESCUE_MAX_SIDE replaced by its best member within it (alone), or left out where it
    has none (RESCUE_MEMBERS): merging sorts by score, so a weak oversize box beside a face can head the face's own."""
    sized = []
    for p in proposals:
        if p.side <= RESCUE_MAX_SIDE:
            sized.append(p)
        elif fitting := [m for m in p.members if m.side <= RESCUE_MAX_SIDE]:
            best = max(fitting, key=lambda m: m.score)
            sized.append(dataclasses.replace(best, hits=1, members=[best]))
    return sized


def rescued(image: np.ndarray, weak: list[Candidate], clusters: list[Candidate],
            faint: list[Candidate] = ()) -> list[Candidate]:
    """The weak proposals that MTCNN's R-Net and then O-Net take for a face at one of the quarter turns (or between
    them: r_net_turns), each turned to that one, for the re-check, on the square O-Net read it on (o_net_rolls). Only
    those of at most RESCUE_MAX_SIDE px near no strong cluster are looked at (weak: RESCUE_FROM up to the proposal
    threshold), and the ``faint`` ones (RESCUE_FAINT up to RESCUE_FROM) near no weak one either.

    Turned faces of people the search was not tuned on, 24-48 px, were proposed at 0.3-0.45 only
    (docs/faces.md, the eighth pass), among ~30 clutter proposals per 1440x1440 still: R-Net (24 px
    crops at the four turns, all in one batch) and O-Net (48 px, R-Net's survivors at R-Net's best turn)
    keep the faces and few of the clutter, where re-checking all of them would cost ~60 short-range
    calls. The turn only sets where the re-check starts: it sees the crop at all four anyway.
    """
    if RESCUE_MEMBERS:
        weak, faint = _rescue_sized(weak), _rescue_sized(faint)
    alone = [w for w in near_none(weak, clusters, RESCUE_BLOCK_RATIO) if w.side <= RESCUE_MAX_SIDE]
    if len(faint):
        # Faint ones (RESCUE_FAINT) only where no weak one lies either: those near one are left to its second look.
        alone += [f for f in near_none(faint, list(clusters) + list(weak), RESCUE_BLOCK_RATIO) if f.side <= RESCUE_MAX_SIDE]
    if not alone:
        return []
    first, turns = r_net_turns(image, [(tuple(w.centre), w.side) for w in alone], RESCUE_R)
    keep = [(w, roll) for w, score, roll in zip(alone, first, turns, strict=True) if score >= RESCUE_R]
    second, rolls, picked = o_net_rolls(image, [(tuple(w.centre), w.side, roll) for w, roll in keep], RESCUE_O)
    return [Candidate(np.array(centre), side, roll, w.score, w.keypoints, int(round(roll)), w.hits, w.members)
            for (w, _), (centre, side, _), score, roll in zip(keep, picked, second, rolls, strict=True)
            if score >= RESCUE_O]


def rescued_where_unseen(image: np.ndarray, weak: list[Candidate], clusters: list[Candidate],
                         readings: list[Candidate | None], floor: float, faint: list[Candidate] = ()) -> list[Candidate]:
    """``rescued`` for the weak and faint proposals a cluster kept from the second look where that cluster's re-check
    (``readings``, one per cluster) saw no face at ``floor`` (RESCUE_WHERE_UNSEEN): each member of a merged proposal
    apart, as a 38 px one on a 32 px face merged into a 75 px one that R-Net read nothing at (second tune part)."""
    seen = [c for c, r in zip(clusters, readings, strict=True) if r is not None and r.score >= floor]
    if len(seen) == len(clusters):
        return []

    def blocked(proposals: list[Candidate], others: list[Candidate]) -> list[Candidate]:
        """The members of those ``proposals`` some cluster blocked and none of ``others`` does."""
        alone = {id(p) for p in near_none(proposals, clusters, RESCUE_BLOCK_RATIO)}
        still_free = {id(p) for p in near_none(proposals, others, RESCUE_BLOCK_RATIO)}
        return [m for p in proposals if id(p) not in alone and id(p) in still_free for m in (p.members or [p])]

    weak_blocked, faint_blocked = blocked(weak, seen), blocked(list(faint), seen + list(weak))
    return rescued(image, weak_blocked, seen, faint_blocked) if weak_blocked or faint_blocked else []


def starting_rolls(image: np.ndarray, squares: list[tuple[tuple[float, float], float, float]],
                   threshold: float) -> tuple[np.ndarray, list[float]]:
    """O-Net's face probability for each (centre, side, turn) square read at its turn, and the roll its candidate
    starts from: where that probability reaches ``threshold`` the roll O-Net's landmark points settle on
    (``settled_rolls``; LANDMARK_ROLL off: the turn)."""
    at_turn, rolls, _ = _starting_rolls(image, squares, threshold)
    return at_turn, rolls


def _starting_rolls(image: np.ndarray, squares: list[tuple[tuple[float, float], float, float]],
                    threshold: float) -> tuple[np.ndarray, list[float], np.ndarray]:
    """``starting_rolls`` and O-Net's landmark points at each square's turn (N x 5 x 2)."""
    if not LANDMARK_ROLL:
        at_turn, points = mtcnn.landmark_readings(image, squares)
        return at_turn, [float(turn) for *_, turn in squares], points
    at_turn, rolls, _, points = _settled(image, squares, threshold)
    return at_turn, rolls, points


def settled_rolls(image: np.ndarray, squares: list[tuple[tuple[float, float], float, float]],
                  threshold: float) -> tuple[np.ndarray, list[float], np.ndarray]:
    """Per (centre, side, turn) square: O-Net's face probability at its turn; the roll O-Net's landmark points settle
    on where that reaches ``threshold`` (else the turn); and O-Net's probability at the roll it read best on the way
    there (-1 where it read none).

    Where its own turn reaches the threshold O-Net reads the square at the other three quarter turns too (R-Net's
    pick is not always the best: a photo read 1.0 at two); at each of the two it reads best, the eye line of its
    points gives a roll (kept within LANDMARK_TRUST of that turn), where it reads the square once more; the roll read
    best there wins, as the eye line of that second reading gives it (a face 45° off: ~40° off after the first
    reading, within ~5° after the second, on pasted photos).
    """
    return _settled(image, squares, threshold)[:3]


def _settled(image: np.ndarray, squares: list[tuple[tuple[float, float], float, float]],
             threshold: float) -> tuple[np.ndarray, list[float], np.ndarray, np.ndarray]:
    """``settled_rolls`` and O-Net's landmark points at each square's turn."""
    at_turn, own_points = mtcnn.landmark_readings(image, squares)
    # The other three turns only where the square's own turn reaches the threshold (few squares: the rest are dropped).
    passing = [i for i in range(len(squares)) if at_turn[i] >= threshold]
    others, other_points = mtcnn.landmark_readings(image, [
        (squares[i][0], squares[i][1], squares[i][2] + 90.0 * k) for i in passing for k in (1, 2, 3)])
    tries: list[tuple[int, float]] = []  # (square, roll) read again
    for j, i in enumerate(passing):
        reads = np.r_[at_turn[i], others[3 * j:3 * j + 3]]
        points = np.concatenate([own_points[i:i + 1], other_points[3 * j:3 * j + 3]])
        for k in np.argsort(-reads, kind="stable")[:2]:
            roll = transform.roll_of(points[k, 0], points[k, 1])
            if abs(transform.wrap(roll - squares[i][2] - 90.0 * k)) <= LANDMARK_TRUST:
                tries.append((i, roll))
    again, at = mtcnn.landmark_readings(image, [(squares[i][0], squares[i][1], roll) for i, roll in tries])
    rolls = [float(turn) for *_, turn in squares]
    best = np.full(len(squares), -1.0)
    for (i, roll), score, points_again in zip(tries, again, at, strict=True):
        if score > best[i]:
            settled = transform.roll_of(points_again[0], points_again[1])
            best[i], rolls[i] = score, settled if abs(transform.wrap(settled - roll)) <= LANDMARK_TRUST else roll
    return at_turn, [float(transform.wrap(r)) for r in rolls], best, own_points


def confirm(image: np.ndarray, c: Candidate, turns: bool, floor: float) -> tuple[Candidate | None, int]:
    """The upright re-check of one merged proposal: its reading (None: no face near it) and the calls made.

    ``turns``: the proposal's orientation is unknown (tiles seen at fewer than four turns), so the crop
    is seen at its quarter turns; else once, at the proposal's own roll. When the cluster's crop reads
    under ``floor`` and a member is much smaller than the cluster's best proposal, the smallest member
    is re-checked at its own size (SMALLER_MEMBER): a 24 px face merged with a 1.7x larger clutter
    proposal beside it was cut at the larger size, too small in the crop for the model to read. A soft candidate
    that still reads under ``floor`` is re-checked once more as if LARGER_RETRY_GROW times larger (LARGER_RETRY).
    """
    if not turns:
        best, calls = recheck(image, tuple(c.centre), c.side, c.roll, RECHECK_THRESHOLD, c.rotation), 1
    else:
        best, calls = recheck_turns(image, tuple(c.centre), c.side, c.roll, RECHECK_THRESHOLD, c.score, floor, c.widest)
        small = min(c.members or [c], key=lambda m: m.side)
        if SMALLER_MEMBER and (best is None or best.score < floor) and small.side < SMALLER_MEMBER_RATIO * c.side:
            again, more = recheck_turns(image, tuple(small.centre), small.side, small.roll, RECHECK_THRESHOLD,
                                        small.score, floor, small.widest)
            calls += more
            if again is not None and (best is None or again.score > best.score):
                best = again
        if (LARGER_RETRY and (best is None or best.score < floor) and c.side <= LARGER_RETRY_MAX_SIDE
                and sharpness(image, tuple(c.centre), c.side, c.roll) < LARGER_RETRY_SOFT):
            again, more = recheck_turns(image, tuple(c.centre), LARGER_RETRY_GROW * c.side, c.roll,
                                        RECHECK_THRESHOLD, c.score, floor, c.widest)
            calls += more
            if again is not None and again.score >= floor:
                if LARGER_RETRY_YIELDS:
                    again.fallbacks += _pushed_out(c, best)
                best = again
    if best is not None:
        best.hits, best.near_peak, best.eighth = c.hits, c.near_peak, c.eighth
    return best, calls


def _handed_on(reading: Candidate) -> bool:
    """Whether a re-check reading under the floor is handed on marked ``under_floor`` (UNDER_FLOOR): read from
    UNDER_FLOOR_FROM up, of at most UNDER_FLOOR_MAX_SIDE."""
    return reading.score >= UNDER_FLOOR_FROM and reading.side <= UNDER_FLOOR_MAX_SIDE


def _unseen_handed_on(small: Candidate) -> bool:
    """Whether one of P-Net's small faces the re-check read nothing on is handed on with O-Net's reading (SMALL_UNSEEN):
    O-Net read it from SMALL_UNSEEN_O up, of at most UNDER_FLOOR_MAX_SIDE."""
    return small.o_net >= SMALL_UNSEEN_O and small.side <= UNDER_FLOOR_MAX_SIDE


def _pushed_out(c: Candidate, best: Candidate | None) -> list[Candidate]:
    """What would have stood for ``c`` had the larger retry read nothing (LARGER_RETRY_YIELDS), marked under the floor
    for refinement to judge as detect would have handed it on (``_handed_on``): the re-check's own reading, else for one
    of P-Net's small faces its O-Net reading (``_unseen_handed_on``)."""
    if not UNDER_FLOOR:
        return []
    if best is not None and _handed_on(best):
        return [dataclasses.replace(best, under_floor=True)]
    if SMALL_UNSEEN and _unseen_handed_on(c):
        return [dataclasses.replace(c, score=c.o_net, under_floor=True, members=[], fallbacks=[])]
    return []


def _opinions(image: np.ndarray, contenders: list[Candidate]) -> None:
    """Full-range scores of the re-check's contending turns (``Candidate.opinion``), few calls.

    The roll tries (SECOND_TRIES) go round the contenders: every contender at the face's roll
    first, the ±8° tries only while no contender has reached SECOND_ENOUGH. Asking each contender
    all its tries in turn spent three calls on every wrong turn of a real face (the full-range
    model gives an upside-down or sideways face 0 at every try): 39 of a 1440x1440 still's ~52
    full-range calls were the re-check's (tune scenes).

    A contender is not asked once another's geometric mean is at least the square root of its
    own short-range score: no opinion (at most 1) could lift it past that one, so the pick is the
    same (BOUNDED_OPINIONS).
    """
    for c in contenders:
        c.opinion = 0.0
    for offset in SECOND_TRIES if ROUND_ROBIN_TRIES else (None,):
        for c in contenders:
            best = max(math.sqrt(o.score * (o.opinion or 0.0)) for o in contenders)
            if BOUNDED_OPINIONS and c.score <= best * best:
                continue
            if offset is None:
                c.opinion = second_opinion(image, tuple(c.centre), c.side, c.roll)
            elif c.opinion < SECOND_ENOUGH:
                c.opinion = max(c.opinion, second_opinion(image, tuple(c.centre), c.side, c.roll, (offset,)))
        if max(c.opinion for c in contenders) >= SECOND_ENOUGH:
            return


def second_opinion(image: np.ndarray, centre: tuple[float, float], side: float, roll: float,
                   tries: tuple[float, ...] = SECOND_TRIES, mirrored: bool = False) -> float:
    """Score of the full-range model on an upright 192 px crop (0 when it sees no face there).

    The short-range and full-range models fail on different things: textured blobs (gravel, bark,
    galaxies) that fool one at 0.6-0.8 get ~0 from the other, while real faces score >= 0.6 on both.
    The full-range model is brittle to the crop's roll (measured on a clear 60 px render: nothing at
    -76.5°, 0.61 at -77°, 0.78 at -86°), so up to three rolls (SECOND_TRIES) are tried until one
    reaches SECOND_ENOUGH; the best score counts. ``mirrored``: the crop is seen mirrored left to right
    (a face stays a face; clutter that passed as one mostly does not, finder.MIRROR_CHECK_BELOW).
    """
    scale = min(0.4 * 192 / side, 1.0)  # upscaling small faces only lowers this model's score
    best = 0.0
    for offset in tries:
        matrix = transform.upright(centre, roll + offset, scale, (96.0, 96.0))
        if mirrored:
            matrix = mirrored_x(matrix, 192)
        found = blazeface.detect_full_range(warp(image, matrix, (192, 192), interpolation=FULL_RANGE_INTERPOLATION))
        best = max(best, _best_score_near(found, matrix, 192, centre, side, roll))
        if best >= SECOND_ENOUGH:
            break
    return best


# The back-camera model's crop: the face spans BACK_RATIO of its 256 px (on the turned tune part's missed heads, read
# at their true squares, 0.2 gave >= 0.6 for 51 %, 0.35 for 21 %; faces found: 97 % and 89 %).
BACK_RATIO = 0.2


def back_opinion(image: np.ndarray, centre: tuple[float, float], side: float, roll: float) -> float:
    """Score of the back-camera model (finder.BACK_OPINION) on an upright 256 px crop where the face spans BACK_RATIO:
    its best detection near ``centre`` of about ``side``, 0 when none."""
    matrix = transform.upright(centre, roll, BACK_RATIO * blazeface.BACK_INPUT / side,
                               (blazeface.BACK_INPUT / 2, blazeface.BACK_INPUT / 2))
    size = (blazeface.BACK_INPUT, blazeface.BACK_INPUT)
    found = blazeface.detect_back(warp(image, matrix, size, interpolation=FULL_RANGE_INTERPOLATION))
    return _best_score_near(found, matrix, blazeface.BACK_INPUT, centre, side, roll)


# YuNet's crop (finder.YUNET_CHECK, finder.YUNET_VOUCH): the face square at YUNET_FACE px, upright, in a YUNET_CROP px
# square. On the tune parts' refined faces, read so, every mesh-fitted true face read >= 0.68 and the clutter kept as
# faces 0-0.41.
YUNET_FACE = 48.0
YUNET_CROP = 96
# YuNet's box for a face read at its true square is 0.60-0.94 of the square wide (343 pasted faces of the tune parts
# reading >= 0.8). A wider box is a larger face this square is only part of: a 114 px square on the eyes of a 384 px
# face read 0.8 with a box 1.65 wide, reaching out of the crop. Some slack is left for squares refined a little small.
YUNET_WIDEST = 1.4


# Issue 17's thirty-ninth pass: YuNet's box as a measure of a face's size (finder.YUNET_SIZE). Read with the face
# square at YUNET_SIZE_FACE px in a YUNET_SIZE_CROP px crop, so that a face down to a quarter of the square is still
# ~24 px there, YuNet's box on the 1293 mesh-fitted faces of the group tune part (seeds 1017-4017, read >= 0.7) was
# YUNET_HEIGHT of the mesh's square high at the median (1.074-1.166 from the 10th to the 90th percentile), 0.80 wide,
# and centred 0.057 of the square above it (YUNET_CENTRE_DOWN).
YUNET_SIZE_FACE = 96.0
YUNET_SIZE_CROP = 192
YUNET_HEIGHT = 1.115
YUNET_CENTRE_DOWN = 0.057
# ... and the read for a larger face around it (finder.YUNET_GROW): the square at 64 px, so a face twice its size is
# 128 px of the 192 px crop, and YuNet's box centred within 0.75 of the square (a box on a face's lower half lies 0.4-0.5
# of itself below the face's centre). Read so, the lower half of a 56 px face (astronaut, group tune head) gave
# 0.84-1.02x the face's size, where the 96 px read saw it clipped, at 0.65-0.9x.
YUNET_GROW_FACE = 64.0
YUNET_GROW_REACH = 0.75


# Issue 17's twenty-seventh pass: YuNet reads a face >= 0.8 only within ~15-20° of its roll (turned tune part's heads
# at their true squares: 97 % at 0°, 91-93 % at 15°, 55-68 % at 30°, 5-11 % at 45°), so its best roll says where a
# face is upright. yunet_roll reads a square at rolls YUNET_SEARCH_STEP apart on a small crop (the face at
# YUNET_SEARCH_FACE px in YUNET_SEARCH_CROP: 0.3 ms a read against 1 ms for YuNet's own crop), then the best of them,
# from YUNET_SEARCH_FROM up, on YuNet's own crop at it and half a step either side. On 125 turned tune heads from a
# random start: 96 % found >= 0.8 (93.6 % with 12 rolls from 0.6), while 7.6 % of 249 clutter candidates reached the
# second stage (1.6 %): 8.7 reads of the small crop's cost a candidate against 12.2.
YUNET_SEARCH_FACE = 32.0
YUNET_SEARCH_CROP = 64
YUNET_SEARCH_STEP = 45.0
YUNET_SEARCH_FROM = 0.45


def yunet_opinion(image: np.ndarray, centre: tuple[float, float], size: float, roll: float,
                  face: float = YUNET_FACE, crop: int = YUNET_CROP) -> float:
    """YuNet's score for the face square ``size`` at ``centre`` seen upright at ``roll`` (``face`` px in a ``crop``
    px square): its best detection within half the face of the crop's centre, 0.5-YUNET_WIDEST times the face's
    side wide; 0 when none."""
    matrix = transform.upright(centre, roll, face / size, (crop / 2, crop / 2))
    best, middle = 0.0, crop / 2
    for score, (x, y, w, h) in yunet.detect(warp(image, matrix, (crop, crop), interpolation=cv2.INTER_LINEAR)):
        near = math.hypot(x + w / 2 - middle, y + h / 2 - middle) < face / 2
        if near and 0.5 < w / face < YUNET_WIDEST:
            best = max(best, score)
    return best


def yunet_square(image: np.ndarray, centre: tuple[float, float], size: float, roll: float,
                 face_px: float = YUNET_SIZE_FACE, reach: float = 0.5
                 ) -> tuple[float, tuple[float, float], float, np.ndarray] | None:
    """YuNet's own face square for the face square ``size`` at ``centre`` seen upright at ``roll``, its size unknown
    (read with the square at ``face_px`` in a YUNET_SIZE_CROP px crop): (score, centre, side, its two eye points in
    image pixels, 2 x 2) from its best detection centred within ``reach`` of the square of the crop's centre, its side
    YuNet's box height over YUNET_HEIGHT, its centre YUNET_CENTRE_DOWN of that side below the box's; None where it
    finds none there. The defaults look for a smaller face (YUNET_SIZE_FACE); YUNET_GROW_FACE and YUNET_GROW_REACH
    for a larger one around the square."""
    scale = face_px / size
    matrix = transform.upright(centre, roll, scale, (YUNET_SIZE_CROP / 2, YUNET_SIZE_CROP / 2))
    middle, best = YUNET_SIZE_CROP / 2, None
    crop = warp(image, matrix, (YUNET_SIZE_CROP, YUNET_SIZE_CROP), interpolation=cv2.INTER_LINEAR)
    for score, (x, y, w, h), points in yunet.detect_points(crop):
        if math.hypot(x + w / 2 - middle, y + h / 2 - middle) < reach * face_px and (best is None or score > best[0]):
            best = (score, (x, y, w, h), points)
    if best is None:
        return None
    score, (x, y, w, h), points = best
    side = h / YUNET_HEIGHT
    back = transform.invert(matrix)
    at = transform.apply(back, np.array([[x + w / 2, y + h / 2 + YUNET_CENTRE_DOWN * side], *points[:2]]))
    return score, (float(at[0, 0]), float(at[0, 1])), side / scale, at[1:]


def yunet_roll(image: np.ndarray, centre: tuple[float, float], size: float, roll: float) -> tuple[float, float]:
    """YuNet's best reading of the face square ``size`` at ``centre`` over every roll, and the roll it reads it at
    (YUNET_SEARCH_STEP apart from ``roll`` on the small crop, then around the best on YuNet's own); (0, ``roll``)
    where no roll reads YUNET_SEARCH_FROM on the small crop."""
    rolls = [float(transform.wrap(roll + YUNET_SEARCH_STEP * k)) for k in range(round(360 / YUNET_SEARCH_STEP))]
    coarse = [yunet_opinion(image, centre, size, r, YUNET_SEARCH_FACE, YUNET_SEARCH_CROP) for r in rolls]
    best = int(np.argmax(coarse))
    if coarse[best] < YUNET_SEARCH_FROM:
        return 0.0, roll
    near = [float(transform.wrap(rolls[best] + d)) for d in (0.0, -YUNET_SEARCH_STEP / 2, YUNET_SEARCH_STEP / 2)]
    reads = [yunet_opinion(image, centre, size, r) for r in near]
    pick = int(np.argmax(reads))
    return reads[pick], near[pick]


def _best_score_near(found: list[blazeface.Detection], matrix: np.ndarray, crop: int, centre: tuple[float, float],
                     side: float, roll: float) -> float:
    """The best score of ``found`` (detections in a ``crop`` px square crop cut by ``matrix``) whose face lies within
    0.4 ``side`` of ``centre`` at 0.5-2x that side; 0 when none does (the second opinions' reading)."""
    back, best = transform.invert(matrix), 0.0
    for d in found:
        c = _parse(d, back, crop, crop, 0, roll)
        near = math.hypot(c.centre[0] - centre[0], c.centre[1] - centre[1]) < 0.4 * side
        if near and 0.5 < c.side / side < 2:
            best = max(best, c.score)
    return best


def sharpness(image: np.ndarray, centre: tuple[float, float], side: float, roll: float) -> float:
    """Edge energy of the face square resampled upright to 64 px, relative to its contrast.

    A long-shot face below ~20 px or a defocused one has little energy at this scale; these are
    the faces whose upscaled crops turn into "devil faces".
    """
    matrix = transform.upright(centre, roll, 64 / side, (32.0, 32.0))
    grey = cv2.cvtColor(warp(image, matrix, (64, 64)), cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    return float(100.0 * np.abs(lap[4:-4, 4:-4]).mean() / (grey.std() + 4.0))
