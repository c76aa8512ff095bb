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


def dual_plain_attacks():
    """The attacks the dual table reads its sweep x values from (DVC: params `attacks`)."""
    return {name: plain(PARAMS.attack(name)) for name in config["attacks"]}


rule dual_table:
    input:
        table_inputs("dual_perturbation"),
    output:
        csv="results/tables/dual_perturbation.csv",
        md="results/tables/dual_perturbation.md",
        figures=directory("results/figures/dual_perturbation"),
        plots=directory("results/plots/dual_perturbation"),
    params:
        spec=config["tables"]["dual_perturbation"],
        attacks=dual_plain_attacks(),
        code=code("dual_table"),
    shell:
        "python -m stages.dual_table --params params.yaml --scale {SCALE} --evals results/evals"
        " --out results/tables/dual_perturbation --figures {output.figures} --plots {output.plots}"


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
        figures=directory("results/figures/pixel_space"),
    params:
        spec=config["tables"]["pixel_space"],
        code=code("pixel_table"),
    shell:
        "python -m stages.pixel_table --params params.yaml --scale {SCALE} --evals results/evals"
        " --out results/tables/pixel_space --figures {output.figures}"
