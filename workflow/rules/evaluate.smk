# Evaluation: one job per (model, attack) pair that params.yaml's evaluation groups list
# (results/evals/) or that a robustness matrix adds (results/matrix/), on the test images of the
# model's evaluation dataset (gradient attacks, few-pixel DE and AutoAttack alike).


rule evaluate:
    input:
        data=lambda wc: f"data/processed/{PARAMS.evaluation_dataset(wc.model).name}/test.npz",
        weights="results/models/{model}/model.pt",
    output:
        metrics="results/evals/{model}/{attack}.json",
        throughput="results/evals/{model}/{attack}.throughput.json",
    params:
        model=lambda wc: plain(PARAMS.model(wc.model)),
        attack=lambda wc: plain(PARAMS.attack(wc.attack)),
        dataset=lambda wc: plain(PARAMS.evaluation_dataset(wc.model)),
        seed=config["seed"],
        device=config["device"],
        regions=config["regions"],
        batch_size=PARAMS.eval_batch_size,
        code=code("evaluate"),
    wildcard_constraints:
        model="|".join(PARAMS.model_names()),
        attack="|".join(config["attacks"]),
    resources:
        mem_mb=resources_of("evaluate", "mem_mb", 4000),
        gpu=resources_of("evaluate", "gpu", 0),
    shell:
        "python -m stages.evaluate --params params.yaml --scale {SCALE} --model {wildcards.model}"
        " --attack {wildcards.attack} --data {input.data} --weights {input.weights}"
        " --out {output.metrics}"


# The robustness matrices' cells that no evaluation group lists: the same job, kept apart so
# that adding a matrix column reruns no paper table.
use rule evaluate as evaluate_matrix with:
    output:
        metrics="results/matrix/{model}/{attack}.json",
        throughput="results/matrix/{model}/{attack}.throughput.json",
