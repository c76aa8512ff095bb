# Tables with the papers' numbers beside ours.


rule lat_table:
    input:
        table_inputs("lat"),
    output:
        csv="results/tables/lat.csv",
        md="results/tables/lat.md",
    params:
        spec=config["tables"]["lat"],
        code=code("lat_table"),
    shell:
        "python -m stages.lat_table --params params.yaml --scale {SCALE} --evals results/evals"
        " --out results/tables/lat"


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
        table_inputs("attention_masks"),
    output:
        csv="results/tables/attention_masks.csv",
        md="results/tables/attention_masks.md",
    params:
        spec=config["tables"]["attention_masks"],
        code=code("attention_table"),
    shell:
        "python -m stages.attention_table --params params.yaml --scale {SCALE} --evals results/evals"
        " --out results/tables/attention_masks"
