"""The components that ship with seqkit, registered through the `seqkit` entry points."""
