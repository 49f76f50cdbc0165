"""patchprop command line: register images, inspect the graph, run everything locally."""
