// Starts GraphiQL against this server's /graphql. The API key is entered once
// in the headers pane; GraphiQL keeps headers in the browser's storage.
(function () {
  var fetcher = GraphiQL.createFetcher({ url: "/graphql" });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      shouldPersistHeaders: true,
      defaultHeaders: '{\n  "Authorization": "Bearer <your API key>"\n}',
      defaultQuery:
        "# Put your API key in the headers pane below, then run:\n" +
        "{\n  viewer { workspace { name } role }\n  traits(first: 10) { nodes { slug status lastComputedAt } }\n}\n",
    })
  );
})();
