TEACHER = f"{R}/world/teacher" if WORLD else config["sana"]["teacher"]
# The DC-AE alone: in the world it is ready long before the teacher, so this stage is off the critical path.
VAE = f"{R}/world/vae" if WORLD else f"{config['sana']['teacher']}/vae"

rule black_latent:
    input: VAE
    output: f"{R}/black_latent.pt"
    params: cfg=stage_params("black_latent")
    log: f"{R}/logs/black_latent.log"
    priority: 10  # distill needs it; 10 s, before the judge takes the second core
    shell: "tbcm black-latent --params {PARAMS:q} --vae {input:q} --out {output:q} > {log} 2>&1"
