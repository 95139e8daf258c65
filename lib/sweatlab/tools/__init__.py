"""The commands: cli, doctor, profile, progress, class report, wheelhouse."""
