/* Search ranking: the chapters first. Sphinx scores a glossary term or an API name above a
   page that explains it (an object match earns more than a title or text match); a reader
   asking for "Hessian" wants the chapter, then the glossary, then the API. */
var Scorer = {
  score: (result) => {
    const [docname, , , , score] = result;
    if (docname.startsWith("chapters/")) return score + 30;
    if (docname.startsWith("api")) return score - 10;
    return score;
  },
  objNameMatch: 11,
  objPartialMatch: 6,
  objPrio: { 0: 15, 1: 5, 2: -5 },
  objPrioDefault: 0,
  title: 15,
  partialTitle: 7,
  term: 5,
  partialTerm: 2,
};
