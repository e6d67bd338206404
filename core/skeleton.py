"""The 22-joint SMPL skeleton of HumanML3D: the one skeleton every part of the project speaks.

+x is the body's left, +y is up and the body faces +z (docs/momask.md, "Skeleton"). Pure numpy; no torch.
"""
import numpy as np

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)
JOINT_INDEX = {name: i for i, name in enumerate(JOINT_NAMES)}

PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19])

KINEMATIC_CHAINS = (
    (0, 2, 5, 8, 11),       # right leg
    (0, 1, 4, 7, 10),       # left leg
    (0, 3, 6, 9, 12, 15),   # spine and head
    (9, 14, 17, 19, 21),    # right arm
    (9, 13, 16, 18, 20),    # left arm
)

# Unit rest direction of each joint's offset from its parent (HumanML3D's t2m_raw_offsets).
RAW_OFFSETS = np.array([
    [0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -1, 0],
    [0, -1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1],
    [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0], [0, -1, 0],
], dtype=np.float64)

# Bone lengths (metres) of HumanML3D's target subject, read off frame 0 of the processed fixture
# ../shared/fixtures/humanml3d/000000_joints.npy (every processed clip shares this skeleton).
TARGET_BONE_LENGTHS = np.array([
    0.0, 0.1030739931919757, 0.1098833822085174, 0.13156820667842845, 0.3936231977155538,
    0.39018823025165716, 0.1431902182042968, 0.4324329924090163, 0.425643410865704,
    0.05736477360467292, 0.1433818260708018, 0.14941908419311845, 0.2193600497597116,
    0.13748682757208558, 0.14338278563478613, 0.10303923890689161, 0.1316140231268059,
    0.12298436414362632, 0.25683992857472054, 0.2630918672966271, 0.2660117681389607,
    0.26987636911316615,
])
TARGET_OFFSETS = RAW_OFFSETS * TARGET_BONE_LENGTHS[:, None]

# Role indices used by the feature processing.
RIGHT_FOOT_JOINTS = (8, 11)
LEFT_FOOT_JOINTS = (7, 10)
FOOT_CONTACT_JOINTS = (7, 10, 8, 11)  # order of the 4 contact channels: l_ankle, l_foot, r_ankle, r_foot
LEG_LENGTH_JOINTS = (5, 8)            # right knee, right ankle: the leg whose length scales the root
FACE_JOINTS = (2, 1, 17, 16)          # r_hip, l_hip, r_shoulder, l_shoulder

# Left <-> right swap used by mirroring: MIRROR_PERMUTATION[j] is the joint that j becomes.
MIRROR_PERMUTATION = np.array([
    JOINT_INDEX[n.replace("left_", "@").replace("right_", "left_").replace("@", "right_")]
    for n in JOINT_NAMES
])


def rest_positions(offsets: np.ndarray, parents=PARENTS) -> np.ndarray:
    """(J, 3) joint positions of (J, 3) offsets from each joint's parent (parents listed before children;
    the root at its own offset): a skeleton at rest, no rotations."""
    positions = np.array(offsets, dtype=np.float64)
    for j, parent in enumerate(parents):
        if parent >= 0:
            positions[j] += positions[parent]
    return positions


def facing_directions(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) y-up joints -> (T, 3) unit forward directions on the floor plane: up x across, across being
    the hips' and the shoulders' left-to-right sum (HumanML3D's rule)."""
    across = (joints[:, JOINT_INDEX["right_hip"]] - joints[:, JOINT_INDEX["left_hip"]]
              + joints[:, JOINT_INDEX["right_shoulder"]] - joints[:, JOINT_INDEX["left_shoulder"]])
    forward = np.cross([0.0, 1.0, 0.0], across)
    forward[:, 1] = 0
    return forward / np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-8)
