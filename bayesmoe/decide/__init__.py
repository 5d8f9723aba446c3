"""Layer 5, decisions from a posterior: optimal configurations (:mod:`.optimum`), recommendations
(:mod:`.recommend`), model comparison (:mod:`.compare`), held-out checks (:mod:`.holdout`) and which
runs to train next (:mod:`.design`).

Imports from the layers below (runs, laws, model, inference). The functions are re-exported at the top
level: ``bayesmoe.optimum``, ``bayesmoe.recommend``, ``bayesmoe.compare``, ``bayesmoe.design``.
"""
