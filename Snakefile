# Backdrop: the reproduction DAG. Thin on purpose: the rules are in workflow/rules/*.smk and
# the science in stages/. `dvc.yaml` runs the same commands (tests/test_dag_agreement.py).

configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        expand("results/raw/{source}.json", source=config["raw"]["datasets"]),
        expand("results/datasets/{dataset}.json", dataset=config["datasets"]),
        expand("results/models/{model}/metrics.json", model=PARAMS.model_names()),
        evaluation_outputs(),
        "results/tables/lat.md",
        "results/tables/attention_masks.md",
        "results/tables/datasets.md",
        "results/tables/dual_perturbation.md",
        "results/tables/pixel_space.md",
        "results/tables/robustness_matrix.md",
        "results/report.md",
        expand(
            "results/figures/dual_gradients/{dataset}.png",
            dataset=config["tables"]["dual_perturbation"]["datasets"],
        ),
