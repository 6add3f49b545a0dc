"""Faces grouped into persons across a video's sampled frames: a small multi-object tracker.

Frame by frame, each open track (a person) predicts where its face will be (its last box moved
by its last velocity) and the new frame's faces are matched to the tracks by an optimal
assignment (scipy's linear_sum_assignment) on a cost of box overlap and centre distance. A pair
may match only when the boxes overlap by at least TRACK_MIN_IOU or their centres lie within
TRACK_MAX_DISTANCE face widths: at one or two sampled frames per second a walking face moves
further than its own width, so overlap alone would lose it. A track survives up to TRACK_MAX_GAP
sampled frames without a face (a missed detection, a turned head); after that a face there
starts a new person. Persons are numbered 1, 2, ... in order of first appearance (left to right
within a frame).

Limits (docs/04-detect.md): the tracker sees boxes only, never who a face is. Two people who
swap places while one of them is off screen (or undetected for more than TRACK_MAX_GAP frames)
are not told apart, and a person who leaves and comes back later gets a new number. In crowds,
with faces closer than their own width, tracks can swap at a crossing; the velocity prediction
keeps them apart only when people move steadily.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment

NO_MATCH = 1e6  # cost of a forbidden pair: larger than any allowed cost


def box_iou(a, b):
    """Intersection over union of two (x, y, width, height) boxes, in [0, 1]."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    height = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = width * height
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def box_centre(box):
    x, y, width, height = box
    return np.array([x + width / 2, y + height / 2], dtype=np.float64)


class Track:
    """One person's track: its last box, where and when it was last seen, and its velocity."""

    def __init__(self, person, box, position):
        self.person = person
        self.box = tuple(float(v) for v in box)
        self.position = position                # index into the frames read, not the frame number
        self.velocity = np.zeros(2)             # pixels per sampled frame

    def predicted_box(self, position):
        """The last box moved on by the velocity to sampled frame `position`."""
        shift = self.velocity * (position - self.position)
        x, y, width, height = self.box
        return (x + shift[0], y + shift[1], width, height)

    def update(self, box, position):
        steps = position - self.position
        self.velocity = (box_centre(box) - box_centre(self.box)) / max(1, steps)
        self.box, self.position = tuple(float(v) for v in box), position


def match_cost(predicted, box, min_iou, max_distance):
    """The cost of giving `box` to a track expected at `predicted`: (1 - IoU) + centre distance in
    face widths; NO_MATCH when neither the overlap nor the distance allows the pair."""
    iou = box_iou(predicted, box)
    size = max(predicted[2], predicted[3], box[2], box[3], 1.0)
    distance = float(np.linalg.norm(box_centre(predicted) - box_centre(box))) / size
    if iou < min_iou and distance > max_distance:
        return NO_MATCH
    return (1.0 - iou) + distance


def track_persons(frame_order, detections, max_gap=2, min_iou=0.3, max_distance=1.0):
    """The person number (1, 2, ...) of each detection, in the order given.

    frame_order: every frame index read, in order (frames without a face count as misses).
    detections: [(frame index, (x, y, width, height))]. A detection in a frame not in
    `frame_order` is an error (ValueError).
    """
    position_of = {frame: position for position, frame in enumerate(frame_order)}
    by_position = {}
    for number, (frame, box) in enumerate(detections):
        if frame not in position_of:
            raise ValueError(f"face in frame {frame}, which is not among the frames read")
        by_position.setdefault(position_of[frame], []).append(number)
    persons = [0] * len(detections)
    tracks, next_person = [], 1
    for position in sorted(by_position):
        numbers = by_position[position]
        open_tracks = [t for t in tracks if position - t.position - 1 <= max_gap]
        matched = set()
        if open_tracks:
            cost = np.array([[match_cost(t.predicted_box(position), detections[n][1], min_iou, max_distance)
                              for n in numbers] for t in open_tracks])
            for row, column in zip(*linear_sum_assignment(cost)):
                if cost[row, column] < NO_MATCH:
                    open_tracks[row].update(detections[numbers[column]][1], position)
                    persons[numbers[column]] = open_tracks[row].person
                    matched.add(column)
        # New persons, left to right, so that numbering does not depend on the detector's order.
        for column in sorted(set(range(len(numbers))) - matched, key=lambda c: detections[numbers[c]][1][0]):
            tracks.append(Track(next_person, detections[numbers[column]][1], position))
            persons[numbers[column]] = next_person
            next_person += 1
    return persons


def assign_persons(faces, frame_order, cfg):
    """Set `person` on each FaceScore of a video or image (tracks by TRACK_MAX_GAP,
    TRACK_MIN_IOU, TRACK_MAX_DISTANCE); returns the faces."""
    persons = track_persons(frame_order, [(face.frame, face.box) for face in faces],
                            cfg.TRACK_MAX_GAP, cfg.TRACK_MIN_IOU, cfg.TRACK_MAX_DISTANCE)
    for face, person in zip(faces, persons):
        face.person = person
    return faces
