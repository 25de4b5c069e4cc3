"""The main job: ``radseg demo`` runs the whole loop on phantoms and writes ``report.html``."""
