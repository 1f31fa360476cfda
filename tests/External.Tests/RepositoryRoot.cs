namespace EptFuzz.External.Tests;

/// <summary>Finds the repository root by its marker file, never by counting "../".</summary>
internal static class RepositoryRoot
{
    public static string Path { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, ".eptfuzz-root")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no .eptfuzz-root above {AppContext.BaseDirectory}");
    }
}
