"""The paper's two tables, reproduced: the driver (:mod:`.driver`) and the tables (:mod:`.tables`)."""

__all__: list = []
