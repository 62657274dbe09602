namespace QuotaProxy.Testing;

/// <summary>The checkout the tests run from.</summary>
public static class Repository
{
    /// <summary>The directory holding <c>QuotaProxy.sln</c>, found above the test binaries.</summary>
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "QuotaProxy.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("QuotaProxy.sln not found above the test binaries.");
    }
}
