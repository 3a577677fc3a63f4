# What the evaluation needs of the real images, computed once and read by both evaluation stages
# (`--ref-dir ... --ref-cached`): the FID reference, features of every real image of the evaluation set at
# evaluate.resolution, and every real image's CLIP score against its prompt (the metrics' "real" row), one
# .npz each (named by the set, the weights and, for FID, the resolution: eval/reference.py). They depend on
# the set, the feature extractor, the CLIP model and five evaluate keys (workflow/stage_params.yaml) only, so
# changing the distillation (e.g. distill.r_final), sample or evaluate.n leaves them alone.
FID_REF = f"{R}/fid_reference"
DECODE_WORKERS = config["evaluate"]["decode_workers"]  # processes reading the images back, beside this one
# Each keeps up to two batches of Inception's inputs (299 px float32, ~1.1 MB an image) in shared memory, which
# Slurm counts as the job's memory (eval/loader.py).
DECODE_MEM_MB = DECODE_WORKERS * (22 * config["evaluate"]["batch_size"] + 9) // 10

if WORLD:
    EVAL_SET = f"{R}/world/data"

    rule fid_reference:
        input: data=EVAL_SET, judge=f"{R}/world/judge"
        output: directory(FID_REF)
        params: cfg=stage_params("fid_reference")
        log: f"{R}/logs/fid_reference.log"
        threads: 1 + DECODE_WORKERS  # 1: runs beside distill, which has the other core
        # No GPU: the world's held-out images (2000 by default) through the judge's small towers (or
        # Inception-v3, evaluate.fid_features: inception) take minutes on CPU cores, less than a GPU job
        # would wait in a queue.
        shell: "tbcm eval-reference --params {PARAMS:q} --data {input.data:q}/eval --judge {input.judge:q} --ref-dir {output:q} > {log} 2>&1"

else:
    EVAL_SET = config["sana"]["mjhq"]

    rule fid_reference:
        input: EVAL_SET
        output: directory(FID_REF)
        params: cfg=stage_params("fid_reference")
        log: f"{R}/logs/fid_reference.log"
        threads: max(2, 1 + DECODE_WORKERS)
        # A GPU: Inception-v3 over MJHQ-30k's 30,000 images, each brought to evaluate.resolution (512 px)
        # and then to 299 px, then CLIP ViT-L/14 over them at 224 px, is hours on a few CPU cores (~0.3 s per
        # image per core for Inception alone) and minutes on one GPU, with evaluate.decode_workers CPUs to
        # read the images.
        resources: gpu=1, mem_mb=16000 + DECODE_MEM_MB
        shell: "tbcm eval-reference --params {PARAMS:q} --data {input:q} --ref-dir {output:q} > {log} 2>&1"
