"""The clients of the served model: the shared core in `clients.core` (image intake, face detection and the crop
rule, quality checks, the gRPC detector client, analysis, the typed verdict, the PDF report and the overlay) and
the thin front ends that only turn a verdict into their medium: the Streamlit page (`clients.web`), the Telegram bot
(`clients.bot`, run with `python -m clients.bot`) and the command line (`clients.cli`, the `deepfake-scan` script).
Nothing here needs TensorFlow, and importing a package does no work."""
