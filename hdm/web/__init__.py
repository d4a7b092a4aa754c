"""hdm-serve: a local web page that restores uploaded photos (app.py; the page is index.html, with
no file fetched from elsewhere, so it works offline)."""
