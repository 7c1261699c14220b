"""The web front end: a Streamlit page (`page.py`, run with `streamlit run clients/web/page.py`) that checks uploaded
images through the client core and shows the verdict, the boxes, the heatmaps and the PDF report. It holds no model;
its settings are one typed `WebConfig` read from env vars."""
