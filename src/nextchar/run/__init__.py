"""``nextchar train``'s run folder: the trainer (``trainer``), its checkpoints (``checkpoint``), what a
resume must keep (``resume``), one run per folder (``folder``) and Ctrl-C / SIGTERM (``interrupt``)."""
