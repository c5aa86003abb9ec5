window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  svg: {fontCache: 'global'},
  startup: {pageReady: function () {
    return MathJax.startup.defaultPageReady().then(function () { document.body.dataset.mathjax = 'done'; });
  }}
};
