"""Evaluation: MJHQ-30k layout, image generation, FID (clean-fid) and CLIP score (open_clip)."""
