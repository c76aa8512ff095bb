# Tables with the papers' numbers beside ours.


# Each paper's table stage also writes its claims as records (results/claims/<paper>.json,
# stages/claims/), judged by params.yaml's `claims` rules; the report reads those records.


rule lat_table:
    input:
        evals=table_inputs("lat"),
        stats=table_stats("lat"),
    output:
        csv="results/tables/lat.csv",
        md="results/tables/lat.md",
        claims="results/claims/lat.json",
    params:
        spec=config["tables"]["lat"],
        rules=config["claims"],
        code=code("lat_table"),
    shell:
        "python -m stages.lat_table --params params.yaml --scale {SCALE} --evals results/evals"
        " --datasets results/datasets --out results/tables/lat --claims {output.claims}"


rule dataset_table:
    input:
        stats=expand("results/datasets/{dataset}.json", dataset=config["datasets"]),
        iou="results/metrics/grabcut_vs_ground_truth.json",
    output:
        csv="results/tables/datasets.csv",
        md="results/tables/datasets.md",
    params:
        code=code("dataset_table"),
    shell:
        "python -m stages.dataset_table --params params.yaml --scale {SCALE} --stats results/datasets"
        " --iou {input.iou} --out results/tables/datasets"


rule attention_table:
    input:
        evals=table_inputs("attention_masks"),
        stats=table_stats("attention_masks"),
    output:
        csv="results/tables/attention_masks.csv",
        md="results/tables/attention_masks.md",
        claims="results/claims/attention_masks.json",
    params:
        spec=config["tables"]["attention_masks"],
        rules=config["claims"],
        code=code("attention_table"),
    shell:
        "python -m stages.attention_table --params params.yaml --scale {SCALE} --evals results/evals"
        " --datasets results/datasets --out results/tables/attention_masks --claims {output.claims}"


rule dual_table:
    input:
        evals=table_inputs("dual_perturbation"),
        stats=table_stats("dual_perturbation"),
        salience="results/metrics/salience_quality.json",
    output:
        csv="results/tables/dual_perturbation.csv",
        md="results/tables/dual_perturbation.md",
        claims="results/claims/dual_perturbation.json",
        figures=directory("results/figures/dual_perturbation"),
        plots=directory("results/plots/dual_perturbation"),
    params:
        spec=config["tables"]["dual_perturbation"],
        reads=TABLE_PARAMS["dual_perturbation"],
        rules=config["claims"],
        code=code("dual_table"),
    shell:
        "python -m stages.dual_table --params params.yaml --scale {SCALE} --evals results/evals"
        " --datasets results/datasets --out results/tables/dual_perturbation --claims {output.claims}"
        " --salience {input.salience} --figures {output.figures} --plots {output.plots}"


rule dual_gradients:
    input:
        data="data/processed/{dataset}/test.npz",
        weights=lambda wc: [
            f"results/models/{model}/model.pt"
            for model in config["tables"]["dual_perturbation"]["datasets"][wc.dataset].values()
        ],
    output:
        "results/figures/dual_gradients/{dataset}.png",
    params:
        roles=lambda wc: config["tables"]["dual_perturbation"]["datasets"][wc.dataset],
        images=config["tables"]["dual_perturbation"]["gradient_images"],
        test_samples=lambda wc: PARAMS.dataset(wc.dataset).test_samples,
        code=code("dual_gradients"),
    wildcard_constraints:
        dataset="|".join(config["tables"]["dual_perturbation"]["datasets"]),
    shell:
        "python -m stages.dual_gradients --params params.yaml --scale {SCALE} --dataset {wildcards.dataset}"
        " --data {input.data} --models results/models --out {output}"


rule pixel_table:
    input:
        table_inputs("pixel_space"),
    output:
        csv="results/tables/pixel_space.csv",
        md="results/tables/pixel_space.md",
        claims="results/claims/pixel_space.json",
        figures=directory("results/figures/pixel_space"),
    params:
        spec=config["tables"]["pixel_space"],
        rules=config["claims"],
        code=code("pixel_table"),
    shell:
        "python -m stages.pixel_table --params params.yaml --scale {SCALE} --evals results/evals"
        " --out results/tables/pixel_space --claims {output.claims} --figures {output.figures}"


rule matrix_table:
    input:
        matrix_inputs(),
    output:
        csv="results/tables/robustness_matrix.csv",
        md="results/tables/robustness_matrix.md",
        metrics="results/metrics/robustness_matrix.json",
    params:
        spec=lambda wc: resolve_tree(config["robustness_matrix"], SCALE),
        reads=TABLE_PARAMS["robustness_matrix"],
        code=code("matrix_table"),
    shell:
        "python -m stages.matrix_table --params params.yaml --scale {SCALE} --evals results/evals"
        " --matrix results/matrix --out results/tables/robustness_matrix --metrics {output.metrics}"


rule build_report:
    input:
        tables=expand(
            "results/tables/{table}.md",
            table=["lat", "attention_masks", "dual_perturbation", "pixel_space", "robustness_matrix", "datasets"],
        ),
        figures=[
            "results/figures/dual_perturbation",
            "results/figures/pixel_space",
            *expand(
                "results/figures/dual_gradients/{dataset}.png",
                dataset=config["tables"]["dual_perturbation"]["datasets"],
            ),
            *expand("results/figures/datasets/{dataset}.png", dataset=config["datasets"]),
        ],
        stats=expand("results/datasets/{dataset}.json", dataset=config["datasets"]),
        claims=expand("results/claims/{paper}.json", paper=CLAIM_PAPERS),
    output:
        md="results/report.md",
        html="results/report.html",
    params:
        # The report shows the whole resolved params.yaml (DVC: params.yaml's every key).
        config=lambda wc: resolve_tree(config, SCALE),
        code=code("build_report"),
    shell:
        "python -m stages.build_report --params params.yaml --scale {SCALE} --tables results/tables"
        " --figures results/figures --datasets results/datasets --claims results/claims --out {output.md}"
