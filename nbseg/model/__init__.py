"""The network (:mod:`.unet`: a 2D/3D U-Net, its patch rule, model files; :mod:`.shift`: its input shift)
and its loss (:mod:`.loss`)."""
from .loss import dice_ce_loss
from .unet import SIZES, PatchSizeError, UNet, check_patch_size, load_model_file, save_model_file

__all__ = ["SIZES", "PatchSizeError", "UNet", "check_patch_size", "dice_ce_loss", "load_model_file",
           "save_model_file"]
