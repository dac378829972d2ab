//! Stateright models of the aver cores (filled in by the model-checking issue).
