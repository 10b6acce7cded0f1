"""The fraud pipeline's feature logic: the handbook's baseline (:mod:`.baseline`) and the candidate
groups (:mod:`.groups`). The platform's feature planning and publishing is :mod:`include.features.pipeline`."""
