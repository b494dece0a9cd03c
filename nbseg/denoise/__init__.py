"""Denoising before segmentation: Noise2Void with the N2V2 changes, trained on the noisy images themselves, or
CARE where clean images pair with the noisy ones (:mod:`.blindspot`: the blind spots and their loss;
:mod:`.care`: the pairs' sampler and loss; :mod:`.train`: planning and training with segmentation's loop;
:mod:`.predict`: tiled, blended denoising of files)."""
from .predict import denoise_files, denoise_image, load_denoiser
from .train import denoise_config, load_noisy, plan_denoising, train_denoiser

__all__ = ["denoise_config", "denoise_files", "denoise_image", "load_denoiser", "load_noisy", "plan_denoising",
           "train_denoiser"]
