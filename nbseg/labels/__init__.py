"""Labels: checks of image/mask pairs (:mod:`.qc`, :mod:`.qc_checks`), curation (Seg1/Seg2, excluding
masks, polygons: :mod:`.curation`), the correction notebook's edits with undo (:mod:`.edit`), a classic
first segmentation for images with no masks (:mod:`.classic`), and ground truth from several experts
(STAPLE, majority vote: :mod:`.consensus`, over folders: :mod:`.expert_folders`)."""
from .classic import ClassicSettings, classic_segment
from .consensus import METHODS, GroundTruth, estimate_ground_truth, score_experts
from .curation import (apply_excluding_mask, disagreement_mask, excluding_mask, merge_segmentations,
                       polygons_to_mask)
from .edit import LabelEditor
from .expert_folders import ground_truth_folders, summarise_experts
from .qc import FLAGS, QCReport, qc_dataset, rank_by_disagreement

__all__ = ["FLAGS", "METHODS", "ClassicSettings", "GroundTruth", "LabelEditor", "QCReport", "apply_excluding_mask",
           "classic_segment", "disagreement_mask",
           "estimate_ground_truth", "excluding_mask", "ground_truth_folders", "merge_segmentations",
           "polygons_to_mask", "qc_dataset", "rank_by_disagreement", "score_experts",
           "summarise_experts"]
