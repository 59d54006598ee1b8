"""The synthetic images a sweep needs, set up before trials start: what a space can ask for (`demand`), the
generators fit or loaded and their largest demand made (`preparation`), the label filters (`label_filters`), and
the same for the finalists' fresh seeds (`fresh_seeds`)."""
