"""Evaluation against ground truth: colour and image-quality metrics (CIEDE2000, PSNR, SSIM, LPIPS, ...)."""
