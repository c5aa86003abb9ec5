window.addEventListener("DOMContentLoaded", function () {
  new PagefindUI({element: "#sg-search", showSubResults: true, showImages: false, resetStyles: false,
                  translations: {placeholder: "Search the course"}});
  var input = document.querySelector("#sg-search input");
  if (input) { input.setAttribute("aria-label", "Search the course"); }
});
