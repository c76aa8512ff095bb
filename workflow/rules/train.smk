# Training: natural, standard adversarial (PGD-AT) and localized adversarial (LAT) models.


rule train:
    input:
        data=lambda wc: f"data/processed/{dataset_of_model(wc.model)}/train.npz",
    output:
        model="results/models/{model}/model.pt",
        metrics="results/models/{model}/metrics.json",
        throughput="results/models/{model}/throughput.json",
    params:
        spec=lambda wc: plain(PARAMS.model(wc.model)),
        seed=lambda wc: PARAMS.model_seed(wc.model),
        device=config["device"],
        regions=config["regions"],
        code=code("train"),
    wildcard_constraints:
        model="|".join(PARAMS.model_names()),
    resources:
        mem_mb=resources_of("train", "mem_mb", 8000),
        gpu=resources_of("train", "gpu", 0),
    shell:
        "python -m stages.train --params params.yaml --scale {SCALE} --model {wildcards.model}"
        " --data {input.data} --out results/models/{wildcards.model}"
