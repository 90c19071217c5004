/* Search ranking: the chapters first. Sphinx scores a glossary term or an API name (an index
   entry or an object, up to 100) far above a page that explains it (a title word 15, a text
   word 5); a reader asking for "Hessian" wants the chapter, then the glossary and the API.
   So a chapter's score gains 30 and every other page's is halved. */
var Scorer = {
  score: (result) => {
    const [docname, , , , score] = result;
    return docname.startsWith("chapters/") ? score + 30 : score / 2;
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
