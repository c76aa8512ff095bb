# Raw data (official layouts, from a mirror or the official archives) and processed datasets.


rule fetch_raw:
    output:
        raw=directory("data/raw/{source}"),
        report="results/raw/{source}.json",
    params:
        mirror=config["raw"]["mirror"],
        download=str(config["raw"]["download"]).lower(),
        code=code("fetch_raw"),
    wildcard_constraints:
        source="|".join(config["raw"]["datasets"]),
    shell:
        "python -m stages.fetch_raw --dataset {wildcards.source} --out {output.raw}"
        " --mirror '{params.mirror}' --download {params.download} --report {output.report}"


rule prepare:
    input:
        # A folder has no checksum, so its timestamps (reset by `dvc checkout`) must not
        # trigger reruns: ancient(). Its content is tracked through the fetch report, which
        # lists every file with its checksum.
        raw=lambda wc: ancient(f"data/raw/{config['datasets'][wc.dataset]['source']}"),
        report=lambda wc: f"results/raw/{config['datasets'][wc.dataset]['source']}.json",
    output:
        train="data/processed/{dataset}/train.npz",
        test="data/processed/{dataset}/test.npz",
        stats="results/datasets/{dataset}.json",
        grid="results/figures/datasets/{dataset}.png",
    params:
        spec=lambda wc: resolve_tree(config["datasets"][wc.dataset], SCALE),
        code=code("prepare"),
    wildcard_constraints:
        dataset="|".join(config["datasets"]),
    shell:
        "python -m stages.prepare --params params.yaml --scale {SCALE} --dataset {wildcards.dataset}"
        " --raw {input.raw} --out data/processed/{wildcards.dataset} --stats {output.stats}"
        " --grid {output.grid}"


rule grabcut_vs_ground_truth:
    input:
        data=lambda wc: f"data/processed/{config['mask_quality']['ground_truth']}/test.npz",
    output:
        "results/metrics/grabcut_vs_ground_truth.json",
    params:
        spec=lambda wc: resolve_tree(config["mask_quality"], SCALE),
        routine=lambda wc: resolve_tree(config["datasets"][config["mask_quality"]["routine"]], SCALE),
        code=code("grabcut_vs_ground_truth"),
    shell:
        "python -m stages.grabcut_vs_ground_truth --params params.yaml --scale {SCALE}"
        " --data {input.data} --out {output}"


# How well each salience model (the stand-ins for the dual-perturbation paper's DeepGaze II)
# agrees with the ground-truth masks of the dual-perturbation datasets, on the test images
# the evaluations see: params.yaml picks the dual attacks' `salience` by it.
rule salience_quality:
    input:
        data=expand(
            "data/processed/{dataset}/test.npz", dataset=config["tables"]["dual_perturbation"]["datasets"]
        ),
    output:
        "results/metrics/salience_quality.json",
    params:
        samples=lambda wc: {
            dataset: resolve_tree(config["samples"][dataset]["test"], SCALE)
            for dataset in config["tables"]["dual_perturbation"]["datasets"]
        },
        code=code("salience_quality"),
    shell:
        "python -m stages.salience_quality --params params.yaml --scale {SCALE}"
        " --data {input.data} --out {output}"
