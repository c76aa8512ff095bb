# Evaluation: one job per (model, attack) pair that params.yaml's evaluation groups list, on
# the test images of the pair's group dataset (gradient attacks and few-pixel DE alike).


rule evaluate:
    input:
        data=lambda wc: f"data/processed/{PARAMS.evaluation_dataset(wc.model, wc.attack).name}/test.npz",
        weights="results/models/{model}/model.pt",
    output:
        metrics="results/evals/{model}/{attack}.json",
        throughput="results/evals/{model}/{attack}.throughput.json",
    params:
        model=lambda wc: plain(PARAMS.model(wc.model)),
        attack=lambda wc: plain(PARAMS.attack(wc.attack)),
        dataset=lambda wc: plain(PARAMS.evaluation_dataset(wc.model, wc.attack)),
        seed=config["seed"],
        device=config["device"],
        regions=config["regions"],
        batch_size=PARAMS.eval_batch_size,
        code=code("evaluate"),
    wildcard_constraints:
        model="|".join(config["models"]),
        attack="|".join(config["attacks"]),
    resources:
        mem_mb=resources_of("evaluate", "mem_mb", 4000),
        gpu=resources_of("evaluate", "gpu", 0),
    shell:
        "python -m stages.evaluate --params params.yaml --scale {SCALE} --model {wildcards.model}"
        " --attack {wildcards.attack} --data {input.data} --weights {input.weights}"
        " --out {output.metrics}"
