namespace EptFuzz.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        Console.Error.WriteLine("eptfuzz: the command line is being assembled; no command is available yet.");
        return 2;
    }
}
