"""The copy verdict as stages, each a module:

    prepare        a body -> kept paragraphs, shingles, figures, prose shapes
    index          shingles -> MinHash signatures -> LSH candidates (the datasketch importer)
    features       two prepared bodies and their items -> one PairFeatures record
    verdict        PairFeatures -> Decision (score in [0, 1], copy or not)
    place          the matched members -> who is whose parent, who is the original

`aggregator.linker` runs them inside the transaction that stores a poll's items.
"""
