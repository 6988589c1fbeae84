"""Training: fine-tuning jobs the OS schedules beside inference, whose results become models.

A job (:class:`~llmos.domain.training.Job`) names a registered base model, a dataset of the data
subsystem and hyperparameters. :class:`~llmos.training.manager.TrainingManager` queues it, waits
for memory and threads, runs it in its own OS process (:mod:`llmos.training.worker`, PEFT LoRA
on torch CPU: :mod:`llmos.training.trainer`), records its progress events and checkpoints
(:mod:`llmos.storage.training`), pauses it while interactive inference is queued, and registers
the result — a llama.cpp LoRA adapter GGUF (:mod:`llmos.training.adapter_gguf`) or a merged GGUF
(:mod:`llmos.training.merge`) — as a new model version whose manifest records its lineage.
"""
