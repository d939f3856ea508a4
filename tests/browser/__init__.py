"""Browser tests: the widget as people meet it, in JupyterLab, Notebook 7 and Voila."""
