"""Worker assembly: the Temporal client and converter, task queue, activities with their
dependencies, and the search attributes the workflows write."""
