rule collect_prompts:
    input: f"{R}/world/data" if WORLD and not config["prompts"]["file"] else config["prompts"]["file"]
    output: f"{R}/prompts/prompts.txt"
    log: f"{R}/logs/collect_prompts.log"
    params:
        cfg=stage_params("collect_prompts"),
        world=lambda wc, input: f"--world-prompts {shlex.quote(str(input))}/train_prompts.txt" if not config["prompts"]["file"] else ""
    shell: "tbcm collect-prompts --params {PARAMS:q} {params.world} --out {output:q} > {log} 2>&1"
