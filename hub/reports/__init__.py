"""Reports and exports: the queries shared by the console, the JSON API and the downloads.
Between the web and the delivery layers; reads the store, never writes it."""
